from __future__ import annotations

from django import forms

from chat.models import Conversation
from openrouter.catalogue import model_id_validator, model_offered


class ConversationOptionsForm(forms.ModelForm):
    """How a conversation asks: the system prompt and sampling settings (blank = model default)."""

    class Meta:
        model = Conversation
        fields = ["system_prompt", "temperature", "max_tokens"]
        widgets = {
            "system_prompt": forms.Textarea(
                attrs={"rows": 4, "placeholder": "e.g. You are a concise assistant."}
            ),
            "temperature": forms.NumberInput(
                attrs={"step": "0.1", "min": "0", "max": "2", "placeholder": "model default"}
            ),
            "max_tokens": forms.NumberInput(attrs={"min": "1", "placeholder": "model default"}),
        }
        help_texts = {
            "temperature": "0 to 2; lower is more focused. Blank: the model's default.",
            "max_tokens": "Longest answer, in tokens. Blank: no limit beyond the model's own.",
        }


class ConversationSettingsForm(ConversationOptionsForm):
    model = forms.CharField(
        required=False,
        max_length=200,
        validators=[model_id_validator],
        # A blank model sends none: OpenRouter answers with the account's own default
        # (chat.services.completion_request). The Account page's default only starts new chats.
        help_text=(
            "Blank: your OpenRouter account's default model, as set on openrouter.ai. "
            "The Account page's default model is for new chats only."
        ),
    )

    class Meta(ConversationOptionsForm.Meta):
        fields = ["title", "model", "system_prompt", "temperature", "max_tokens"]

    def clean_model(self) -> str:
        model: str = self.cleaned_data["model"]
        # Only a model being picked here: a conversation whose model OpenRouter has dropped
        # since keeps its other settings editable.
        if model and "model" in self.changed_data and not model_offered(model):
            raise forms.ValidationError(
                "OpenRouter has no chat model “%(model)s”. Pick one with Choose…, or leave "
                "this blank for your OpenRouter default.",
                params={"model": model},
            )
        return model


class RenameForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ["title"]


class ModelChoiceForm(forms.Form):
    model = forms.CharField(required=False, max_length=200, validators=[model_id_validator])
