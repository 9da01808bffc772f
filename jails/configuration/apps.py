from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConfigurationConfig(AppConfig):
    name = "jails.configuration"
    label = "configuration"
    verbose_name = _("fail2ban configuration")
    default_auto_field = "django.db.models.BigAutoField"
