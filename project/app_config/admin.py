from django import forms
from django.contrib import admin

from project.app_config.models import Config
from project.moderation.settings import ModerationConfigError
from project.moderation.settings import validate as validate_moderation


class ConfigForm(forms.ModelForm):
    class Meta:
        model = Config
        fields = ["key", "value", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.is_secret:
            # Never send a stored secret back to the browser; an empty field keeps it.
            self.fields["value"].widget = forms.PasswordInput(render_value=False)
            self.fields["value"].required = False
            self.fields["value"].help_text = f"Stored: {self.instance.masked_value()}. Leave empty to keep it."

    def clean_value(self):
        value = self.cleaned_data.get("value", "")
        if self.instance.pk and self.instance.is_secret and not value:
            return self.instance.value
        return value

    def clean(self):
        cleaned = super().clean()
        key = cleaned.get("key") or self.instance.key
        try:
            # The blocklist's regular expressions are checked here, where the streamer can fix them.
            validate_moderation(key, cleaned.get("value", ""))
        except ModerationConfigError as exc:
            self.add_error("value", str(exc))
        return cleaned


@admin.register(Config)
class ConfigAdmin(admin.ModelAdmin):
    form = ConfigForm
    list_display = ["key", "shown_value", "description", "updated_at"]
    search_fields = ["key", "description"]

    @admin.display(description="value")
    def shown_value(self, obj: Config) -> str:
        value = obj.masked_value()
        return value if len(value) <= 80 else value[:77] + "…"
