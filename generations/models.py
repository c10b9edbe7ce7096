"""3D generations: what a user asked for, where its run stands, and the files it produced.

State changes are pure methods (no I/O): each sets its fields and returns their names, so a
service can save them conditionally — only while its own claim still holds (see services.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

DEFAULT_MODEL = "openai/shap-e"


# Upstream statuses that the same request would meet again, with what a new request must change
# (the failed page's advice): 400 bad request (often a model that makes no 3D objects), 403
# refused (a guardrail), 404 no 3D generation offered, 413 an object or answer over our size
# limit (openrouter.client.too_large), 451 flagged by moderation.
REFUSALS_A_RETRY_CANNOT_CHANGE = {
    "400": "start a new one with another model or other settings",
    "403": "start a new one with a different description",
    "404": "start a new one with a model that makes 3D objects",
    "413": "start a new one with fewer or simpler objects, or another model",
    "451": "start a new one with a different description",
}


class Generation(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Extension(models.TextChoices):
        PLY = "ply", "PLY"
        GLB = "glb", "GLB (binary glTF)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="generations"
    )
    prompt = models.TextField(max_length=1000)
    model = models.CharField(max_length=200, default=DEFAULT_MODEL)
    num_inference_steps = models.PositiveSmallIntegerField(default=32)
    num_outputs = models.PositiveSmallIntegerField(default=1)
    extension = models.CharField(max_length=3, choices=Extension.choices, default=Extension.PLY)

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    # The latest thing worth telling the user while it runs ("Waiting for OpenRouter…").
    progress = models.CharField(max_length=300, blank=True)
    error_code = models.CharField(max_length=20, blank=True)  # upstream status or a short label
    error_message = models.TextField(blank=True)  # one sentence for the user
    attempts = models.PositiveSmallIntegerField(default=0)  # claims by a worker in this run

    # The current claim: a fresh token per attempt, so that only its holder can save results.
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the current run's task was last sent, and how many times the sweeper re-sent it
    # because no worker ever claimed it (its message was lost, say with a Redis restart).
    queued_at = models.DateTimeField(default=timezone.now, editable=False)
    redispatches = models.PositiveSmallIntegerField(default=0, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["state", "claimed_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.prompt[:60]}"

    def get_absolute_url(self) -> str:
        return reverse("generations:detail", args=[self.pk])

    # --- reading ------------------------------------------------------------------------------

    @property
    def in_flight(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def duration(self) -> timedelta | None:
        """Time taken from the first pick-up to the end (automatic retries included)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def claim_expired(self, now: datetime, lease: timedelta) -> bool:
        return self.claimed_at is None or self.claimed_at <= now - lease

    # --- state changes (pure) -----------------------------------------------------------------

    def mark_running(self, *, token: str, now: datetime) -> list[str]:
        self.state = self.State.RUNNING
        self.claim_token = token
        self.claimed_at = now
        self.started_at = self.started_at or now
        self.attempts += 1
        self.progress = "Waiting for OpenRouter to make the object…"
        return ["state", "claim_token", "claimed_at", "started_at", "attempts", "progress"]

    def mark_waiting(self, *, progress: str) -> list[str]:
        """Back in the queue for an automatic retry; the claim is released."""
        self.state = self.State.QUEUED
        self.progress = progress
        return ["state", "progress"]

    def mark_succeeded(self, *, now: datetime) -> list[str]:
        self.state = self.State.SUCCEEDED
        self.finished_at = now
        self.progress = ""
        self.error_code = self.error_message = ""
        return ["state", "finished_at", "progress", "error_code", "error_message"]

    @property
    def retry_can_help(self) -> bool:
        """Whether sending the same request again could end otherwise: not after the upstream
        refused the request itself (a bad request, moderation, no 3D on offer)."""
        return self.error_code not in REFUSALS_A_RETRY_CANNOT_CHANGE

    @property
    def refusal_advice(self) -> str:
        """What a new request must change when a retry cannot help; empty when it can."""
        return REFUSALS_A_RETRY_CANNOT_CHANGE.get(self.error_code, "")

    def mark_failed(self, code: str, message: str, *, now: datetime) -> list[str]:
        self.state = self.State.FAILED
        self.error_code = code[:20]
        self.error_message = message
        self.finished_at = now
        self.progress = ""
        return ["state", "error_code", "error_message", "finished_at", "progress"]

    def mark_cancelled(self, *, now: datetime) -> list[str]:
        """Stopped by its owner (or staff) while queued or running. The claim is left as it was:
        an attempt still running finds the state changed at its next check and stops."""
        self.state = self.State.CANCELLED
        self.finished_at = now
        self.progress = ""
        self.error_code = self.error_message = ""
        return ["state", "finished_at", "progress", "error_code", "error_message"]

    def mark_queued(self, *, now: datetime | None = None) -> list[str]:
        """A fresh run asked for by a person (the retry button): the past run is forgotten."""
        self.state = self.State.QUEUED
        self.error_code = self.error_message = self.progress = ""
        self.attempts = self.redispatches = 0
        self.started_at = self.finished_at = self.claimed_at = None
        self.queued_at = now or timezone.now()
        fields = ["state", "error_code", "error_message", "progress", "attempts"]
        return [*fields, "started_at", "finished_at", "claimed_at", "queued_at", "redispatches"]

    def mark_redispatched(self, *, now: datetime) -> list[str]:
        """Sent again by the sweeper: never claimed, so its message was presumably lost."""
        self.queued_at = now
        self.redispatches += 1
        return ["queued_at", "redispatches"]


def output_path(output: GenerationOutput, filename: str) -> str:
    generation = output.generation
    return str(PurePosixPath(generation_folder(generation)) / filename)


def generation_folder(generation: Generation) -> str:
    """Where a generation's files live in storage; nothing else is ever stored there."""
    return f"generations/{generation.user_id}/{generation.pk}"


class GenerationOutput(models.Model):
    """One stored file. ``(generation, index)`` is unique: a redone job cannot store it twice."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="outputs")
    index = models.PositiveSmallIntegerField()
    file = models.FileField(upload_to=output_path, max_length=300)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "index"], name="generation_output_once_per_index"
            )
        ]

    def __str__(self) -> str:
        return f"output {self.number} of generation #{self.generation_id}"

    def get_absolute_url(self) -> str:
        return reverse("generations:output", args=[self.generation_id, self.index])

    @property
    def number(self) -> int:
        """1-based, for people."""
        return self.index + 1

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.content_type, "bin")

    @property
    def viewable(self) -> bool:
        """Whether the in-browser viewer can draw it (and it may be served inline)."""
        return self.content_type in EXTENSIONS

    @property
    def download_name(self) -> str:
        return f"generation-{self.generation_id}-{self.number}.{self.extension}"


PLY_TYPE = "application/x-ply"
GLB_TYPE = "model/gltf-binary"
EXTENSIONS = {PLY_TYPE: "ply", GLB_TYPE: "glb"}
