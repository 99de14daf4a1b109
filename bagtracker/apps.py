from django.apps import AppConfig


class BagtrackerConfig(AppConfig):
    name = "bagtracker"
    verbose_name = "Portfolio"

    def ready(self):
        from bagtracker import checks  # noqa: F401  (registers the stored-rows check)
