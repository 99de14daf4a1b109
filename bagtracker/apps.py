from django.apps import AppConfig


class BagtrackerConfig(AppConfig):
    name = "bagtracker"
    verbose_name = "Portfolio"
