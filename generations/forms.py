"""The form that starts a generation: every bound checked here, in words a person reads."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import RegexValidator

from generations.models import DEFAULT_MODEL, Generation
from openrouter.catalogue import model_offered, models_catalogue
from openrouter.errors import size_in_words

MAX_PROMPT_CHARS = 1000
MAX_STEPS = 256
MAX_OUTPUTS = 4

model_id = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-:]*$",
    "Enter a model id like openai/shap-e: letters, digits, '.', '-' and '_' around one '/'.",
)


class GenerationForm(forms.Form):
    prompt = forms.CharField(
        max_length=MAX_PROMPT_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "a chair shaped like an avocado"}),
        error_messages={
            "required": "Describe the object you want.",
            "max_length": f"Keep the description under {MAX_PROMPT_CHARS} characters "
            "(it has %(show_value)d).",
        },
    )
    model = forms.CharField(
        max_length=200,
        validators=[model_id],
        required=False,
        widget=forms.TextInput(attrs={"list": "models-3d", "autocomplete": "off"}),
    )
    num_inference_steps = forms.IntegerField(
        label="Inference steps",
        initial=32,
        min_value=1,
        max_value=MAX_STEPS,
        help_text="More steps: finer detail, slower.",
        error_messages={
            "required": "Enter the number of inference steps.",
            "invalid": "Inference steps must be a whole number.",
            "min_value": "Use at least 1 inference step.",
            "max_value": f"Use at most {MAX_STEPS} inference steps.",
        },
    )
    num_outputs = forms.IntegerField(
        label="Number of objects",
        initial=1,
        min_value=1,
        max_value=MAX_OUTPUTS,
        error_messages={
            "required": "Enter how many objects to make.",
            "invalid": "The number of objects must be a whole number.",
            "min_value": "Make at least 1 object.",
            "max_value": f"Make at most {MAX_OUTPUTS} objects at a time.",
        },
    )
    extension = forms.ChoiceField(
        label="Format",
        choices=Generation.Extension.choices,
        initial=Generation.Extension.PLY,
        error_messages={"invalid_choice": "Pick PLY or GLB as the format."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read per form, so a changed setting shows at once (it is also what the worker enforces).
        limit = size_in_words(settings.GENERATION_MAX_OUTPUT_BYTES)
        self.fields["extension"].help_text = f"Objects up to {limit} each."
        # OpenRouter's 3D models, suggested in the field (index.html's datalist), if the list is
        # at hand (the page never waits for it). The default is ours unless OpenRouter no longer
        # lists it; the field starts blank (a value would hide the other suggestions).
        self.model_suggestions = models_catalogue(output="3d", wait=False).models
        listed = [entry["id"] for entry in self.model_suggestions]
        self.default_model = DEFAULT_MODEL if not listed or DEFAULT_MODEL in listed else listed[0]
        model = self.fields["model"]
        model.widget.attrs["placeholder"] = self.default_model
        model.help_text = (
            f"An OpenRouter model that makes 3D objects; blank means {self.default_model}."
        )

    def clean_model(self) -> str:
        model = str(self.cleaned_data.get("model") or self.default_model)
        # As chat does: checked against OpenRouter's list when it is at hand, else OpenRouter
        # judges the id when the generation runs.
        if not model_offered(model, output="3d"):
            raise forms.ValidationError(
                "OpenRouter has no 3D model “%(model)s”. Pick one from the field's suggestions.",
                params={"model": model},
            )
        return model
