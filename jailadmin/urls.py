from typing import cast

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, reverse_lazy

# The admin is part of jailadmin, not a separate "Django administration".
admin.site.site_header = "jailadmin"
admin.site.site_title = "jailadmin"
admin.site.index_title = "jailadmin administration"
# "View site": the dashboard, with JAILADMIN_URL_PREFIX (the admin's default is the bare
# script name, which leaves the trailing slash to the proxy).
# Lazy: this module is the URL configuration reverse() reads. Templates render it like a str.
admin.site.site_url = cast(str, reverse_lazy("jails:dashboard"))


@login_not_required
def favicon(request: HttpRequest) -> HttpResponse:
    """Every page links its icon; this catches clients that ask for /favicon.ico anyway."""
    return HttpResponsePermanentRedirect(static("jails/favicon.svg"))


urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("jails.urls")),
]
