"""The configuration pages of one host of the fleet, under `/hosts/<host>/config/`
(namespace `jails:host-configuration`): the same routes and views as `/config/`, whose
views then receive the `host` keyword argument. Its own application namespace, so a
`{% url 'jails:configuration:…' %}` elsewhere (base.html) never resolves to this copy."""

from jails.configuration.urls import urlpatterns as configuration_urlpatterns

app_name = "host-configuration"

urlpatterns = list(configuration_urlpatterns)
