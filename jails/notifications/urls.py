"""Notification pages, included by jails.urls at `notifications/` (jails:notifications)."""

from django.urls import path

from jails.notifications.views import pages

app_name = "notifications"

urlpatterns = [
    path("", pages.notification_index, name="index"),
    path("log/", pages.notification_log, name="log"),
    path("log/<int:pk>/", pages.notification_status, name="status"),
    path("channels/", pages.channel_create, name="channel-create"),
    path("channels/<int:pk>/delete/", pages.channel_delete, name="channel-delete"),
    path("channels/<int:pk>/test/", pages.channel_test, name="channel-test"),
    path("rules/", pages.rule_create, name="rule-create"),
    path("rules/<int:pk>/", pages.rule_change, name="rule-change"),
    path("rules/<int:pk>/subscribe/", pages.rule_subscribe, name="rule-subscribe"),
]
