from django.urls import path

from jails.metrics import views

app_name = "metrics"

urlpatterns = [
    # No trailing slash: the path Prometheus scrapes by default.
    path("metrics", views.metrics, name="scrape"),
]
