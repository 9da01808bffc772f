from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    name = "jails.configuration"
    label = "configuration"
    verbose_name = "fail2ban configuration"
    default_auto_field = "django.db.models.BigAutoField"
