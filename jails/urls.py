from django.urls import path
from django.views.generic import RedirectView

from jails.views import jails, status

app_name = "jails"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="jails:jail-list"), name="dashboard"),
    path("jails/", jails.jail_list, name="jail-list"),
    path("jails/<str:name>/", jails.jail_detail, name="jail-detail"),
    path("status-bar/", status.status_bar, name="status-bar"),
    path("healthz", status.healthz, name="healthz"),
]
