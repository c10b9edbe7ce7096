from django import forms

from accounts.models import User
from openrouter.catalogue import model_id_validator, model_offered


class PasteKeyForm(forms.Form):
    key = forms.CharField(
        label="OpenRouter API key",
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "placeholder": "sk-or-v1-…"}),
    )


class PreferencesForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["default_model"]
        labels = {"default_model": "Default model for new chats"}
        help_texts = {"default_model": "Leave empty to use your OpenRouter account's default."}
        widgets = {
            "default_model": forms.TextInput(
                attrs={"placeholder": "My OpenRouter default", "spellcheck": "false"}
            )
        }

    def clean_default_model(self) -> str:
        value: str = self.cleaned_data["default_model"].strip()
        model_id_validator(value)
        # As in a conversation's settings: only a model being picked here is checked, against
        # OpenRouter's list (anything is taken while the list cannot be had).
        if value and "default_model" in self.changed_data and not model_offered(value):
            raise forms.ValidationError(
                "OpenRouter has no chat model “%(model)s”. Check the id (a chat's model picker "
                "lists every one), or leave this blank for your OpenRouter default.",
                params={"model": value},
            )
        return value
