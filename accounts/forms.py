from django import forms

from accounts.models import User


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
                attrs={"list": "model-ids", "placeholder": "My OpenRouter default"}
            )
        }

    def clean_default_model(self) -> str:
        value: str = self.cleaned_data["default_model"].strip()
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@")
        if value and not set(value) <= allowed:
            raise forms.ValidationError("A model id looks like openai/gpt-4o or x/y:free.")
        return value
