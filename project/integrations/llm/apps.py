from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "project.integrations.llm"
    label = "llm"
    verbose_name = "LLM"
