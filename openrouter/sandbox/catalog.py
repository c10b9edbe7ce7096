"""The model list served by ``GET /api/v1/models``, in OpenRouter's shape.

Prices are USD per token, as strings, like the upstream. The list mixes paid, ``:free`` and
multimodal models so that search, filters and price display have something real to chew on, and
ends with the fault models of ``faults.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openrouter.sandbox.faults import FAULTS, Kind

DEFAULT_CHAT_MODEL = "openai/gpt-4o-mini"  # the "account default" when a request names no model
DEFAULT_OBJECT_MODEL = "openai/shap-e"
NOT_3D = (Kind.SLOW, Kind.NO_3D)  # the fault models that make no 3D objects

_CHAT_PARAMETERS = [
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "response_format",
]
_TOOL_PARAMETERS = ["tools", "tool_choice"]


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    created: int
    description: str
    context_length: int
    max_completion_tokens: int | None
    prompt_price: str
    completion_price: str
    tokenizer: str
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    request_price: str = "0"
    image_price: str = "0"
    is_moderated: bool = False
    canonical_slug: str = ""
    tools: bool = True

    @property
    def is_free(self) -> bool:
        return Decimal(self.prompt_price) == 0 and Decimal(self.completion_price) == 0

    @property
    def makes_objects(self) -> bool:
        return "3d" in self.output_modalities

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        total = (
            Decimal(self.prompt_price) * prompt_tokens
            + Decimal(self.completion_price) * completion_tokens
            + Decimal(self.request_price)
        )
        return float(round(total, 10))

    def as_json(self) -> dict[str, Any]:
        modality = f"{'+'.join(self.input_modalities)}->{'+'.join(self.output_modalities)}"
        parameters = []
        if "text" in self.output_modalities:
            parameters += _CHAT_PARAMETERS + (_TOOL_PARAMETERS if self.tools else [])
        if self.makes_objects:
            parameters += ["num_inference_steps", "num_outputs", "extension"]
        return {
            "id": self.id,
            "canonical_slug": self.canonical_slug or self.id,
            "hugging_face_id": "",
            "name": self.name,
            "created": self.created,
            "description": self.description,
            "context_length": self.context_length,
            "architecture": {
                "modality": modality,
                "input_modalities": list(self.input_modalities),
                "output_modalities": list(self.output_modalities),
                "tokenizer": self.tokenizer,
                "instruct_type": None,
            },
            "pricing": {
                "prompt": self.prompt_price,
                "completion": self.completion_price,
                "request": self.request_price,
                "image": self.image_price,
                "web_search": "0",
                "internal_reasoning": "0",
            },
            "top_provider": {
                "context_length": self.context_length,
                "max_completion_tokens": self.max_completion_tokens,
                "is_moderated": self.is_moderated,
            },
            "per_request_limits": None,
            "supported_parameters": parameters,
        }


_TEXT_IMAGE = ("text", "image")

MODELS: tuple[Model, ...] = (
    Model(
        "openai/gpt-4o",
        "OpenAI: GPT-4o",
        1715558400,
        "GPT-4o is OpenAI's flagship multimodal model: GPT-4 Turbo intelligence, twice as fast.",
        128000,
        16384,
        "0.0000025",
        "0.00001",
        "GPT",
        input_modalities=_TEXT_IMAGE,
        image_price="0.003613",
        is_moderated=True,
        canonical_slug="openai/gpt-4o-2024-05-13",
    ),
    Model(
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o-mini",
        1721260800,
        "GPT-4o mini is OpenAI's small, affordable model, smarter and cheaper than GPT-3.5 Turbo.",
        128000,
        16384,
        "0.00000015",
        "0.0000006",
        "GPT",
        input_modalities=_TEXT_IMAGE,
        image_price="0.000217",
        is_moderated=True,
        canonical_slug="openai/gpt-4o-mini-2024-07-18",
    ),
    Model(
        "openai/gpt-3.5-turbo",
        "OpenAI: GPT-3.5 Turbo",
        1685232000,
        "GPT-3.5 Turbo is OpenAI's fast, inexpensive model for simple tasks.",
        16385,
        4096,
        "0.0000005",
        "0.0000015",
        "GPT",
        is_moderated=True,
    ),
    Model(
        "anthropic/claude-3.5-sonnet",
        "Anthropic: Claude 3.5 Sonnet",
        1718841600,
        "Claude 3.5 Sonnet delivers better-than-Opus capabilities at Sonnet speed and price.",
        200000,
        8192,
        "0.000003",
        "0.000015",
        "Claude",
        input_modalities=_TEXT_IMAGE,
        image_price="0.0048",
        is_moderated=True,
        canonical_slug="anthropic/claude-3.5-sonnet-20240620",
    ),
    Model(
        "anthropic/claude-3-haiku",
        "Anthropic: Claude 3 Haiku",
        1710288000,
        "Claude 3 Haiku is Anthropic's fastest model, for near-instant responsiveness.",
        200000,
        4096,
        "0.00000025",
        "0.00000125",
        "Claude",
        input_modalities=_TEXT_IMAGE,
        image_price="0.0004",
        is_moderated=True,
    ),
    Model(
        "google/gemini-flash-1.5",
        "Google: Gemini Flash 1.5",
        1715644800,
        "Gemini 1.5 Flash is a foundation model for visual understanding, classification and chat.",
        1000000,
        8192,
        "0.000000075",
        "0.0000003",
        "Gemini",
        input_modalities=_TEXT_IMAGE,
        image_price="0.00004",
    ),
    Model(
        "google/gemini-pro-1.5",
        "Google: Gemini Pro 1.5",
        1712620800,
        "Google's Gemini 1.5 Pro, with a two-million-token context window.",
        2000000,
        8192,
        "0.00000125",
        "0.000005",
        "Gemini",
        input_modalities=_TEXT_IMAGE,
        image_price="0.0006575",
    ),
    Model(
        "google/gemma-2-9b-it:free",
        "Google: Gemma 2 9B (free)",
        1719532800,
        "Gemma 2 9B by Google, an open model built from the research behind Gemini.",
        8192,
        8192,
        "0",
        "0",
        "Gemini",
        tools=False,
    ),
    Model(
        "meta-llama/llama-3.1-70b-instruct",
        "Meta: Llama 3.1 70B Instruct",
        1721692800,
        "Meta's Llama 3.1 70B, tuned for high-quality dialogue.",
        131072,
        None,
        "0.00000012",
        "0.0000003",
        "Llama3",
    ),
    Model(
        "meta-llama/llama-3.1-405b-instruct",
        "Meta: Llama 3.1 405B Instruct",
        1721692800,
        "The largest Llama 3.1, for long-context and reasoning-heavy work.",
        131072,
        None,
        "0.0000008",
        "0.0000008",
        "Llama3",
    ),
    Model(
        "meta-llama/llama-3.1-8b-instruct:free",
        "Meta: Llama 3.1 8B Instruct (free)",
        1721692800,
        "Meta's fast, efficient Llama 3.1 8B.",
        131072,
        4096,
        "0",
        "0",
        "Llama3",
    ),
    Model(
        "mistralai/mistral-7b-instruct:free",
        "Mistral: Mistral 7B Instruct (free)",
        1716768000,
        "A high-performing, industry-standard 7.3B model, optimised for speed and context length.",
        32768,
        4096,
        "0",
        "0",
        "Mistral",
        tools=False,
    ),
    Model(
        "mistralai/mixtral-8x7b-instruct",
        "Mistral: Mixtral 8x7B Instruct",
        1702166400,
        "A sparse mixture-of-experts model by Mistral AI.",
        32768,
        None,
        "0.00000024",
        "0.00000024",
        "Mistral",
    ),
    Model(
        "mistralai/mistral-large",
        "Mistral Large",
        1708905600,
        "Mistral AI's flagship model, strong at reasoning, code, JSON and chat.",
        128000,
        None,
        "0.000002",
        "0.000006",
        "Mistral",
    ),
    Model(
        "deepseek/deepseek-chat",
        "DeepSeek: DeepSeek V3",
        1735241584,
        "DeepSeek V3, a mixture-of-experts model strong at code and reasoning.",
        64000,
        8192,
        "0.00000014",
        "0.00000028",
        "DeepSeek",
    ),
    Model(
        "deepseek/deepseek-r1:free",
        "DeepSeek: R1 (free)",
        1737381095,
        "DeepSeek R1, an open reasoning model with performance on par with o1.",
        163840,
        None,
        "0",
        "0",
        "DeepSeek",
        tools=False,
    ),
    Model(
        "qwen/qwen-2.5-72b-instruct",
        "Qwen2.5 72B Instruct",
        1726704000,
        "Qwen2.5 72B, much improved at coding, mathematics and structured output.",
        131072,
        8192,
        "0.00000035",
        "0.0000004",
        "Qwen",
    ),
    Model(
        "qwen/qwen-2-7b-instruct:free",
        "Qwen 2 7B Instruct (free)",
        1721088000,
        "Qwen2 7B, a transformer-based model that excels in language understanding.",
        32768,
        4096,
        "0",
        "0",
        "Qwen",
        tools=False,
    ),
    Model(
        "microsoft/phi-3-mini-128k-instruct:free",
        "Microsoft: Phi-3 Mini 128K Instruct (free)",
        1716681600,
        "Phi-3 Mini, a 3.8B-parameter model with a 128K context.",
        128000,
        4096,
        "0",
        "0",
        "Other",
        tools=False,
    ),
    Model(
        "cohere/command-r-plus",
        "Cohere: Command R+",
        1712188800,
        "Command R+ by Cohere, optimised for retrieval-augmented generation and tool use.",
        128000,
        4000,
        "0.00000285",
        "0.00001425",
        "Cohere",
    ),
    Model(
        "openai/shap-e",
        "OpenAI: Shap-E",
        1700000000,
        "Shap-E generates 3D objects (PLY or GLB meshes) from a text prompt.",
        1024,
        None,
        "0",
        "0",
        "GPT",
        output_modalities=("3d",),
        request_price="0.01",
        tools=False,
    ),
)

_FAULT_MODELS: tuple[Model, ...] = tuple(
    Model(
        fault.model_id,
        fault.name,
        1704067200,
        f"Offline sandbox fault model. {fault.description}",
        8192,
        4096,
        "0",
        "0",
        "Other",
        # Listed as making 3D objects when it misbehaves at objects/generations too.
        output_modalities=("text",) if fault.kind in NOT_3D else ("text", "3d"),
        tools=False,
    )
    for fault in FAULTS.values()
)

_BY_ID: dict[str, Model] = {model.id: model for model in MODELS + _FAULT_MODELS}


def model_by_id(model_id: str) -> Model | None:
    return _BY_ID.get(model_id)


def models_json() -> list[dict[str, Any]]:
    return [model.as_json() for model in MODELS + _FAULT_MODELS]
