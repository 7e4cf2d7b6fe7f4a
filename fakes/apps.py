from django.apps import AppConfig


class FakesConfig(AppConfig):
    name = "fakes"
    verbose_name = "Provider fakes (LlamaParse, OpenAI)"
    default_auto_field = "django.db.models.BigAutoField"
