"""Conversations and their messages.

An assistant message is written while it streams: it is created in state ``streaming`` by the
process that reads the upstream (its ``writer``), which saves the text so far every
``CHAT_SAVE_INTERVAL`` and keeps ``heartbeat_at`` fresh. It ends in exactly one final state; a
``streaming`` message whose heartbeat went stale lost its writer and is swept to ``interrupted``.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accounts.models import User


class Conversation(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200)
    # Blank means "my OpenRouter default": no `model` is sent, OpenRouter picks the account's own.
    model = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)]
    )
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["user", "-updated_at"], name="chat_conv_user_recent")]

    def __str__(self) -> str:
        return self.title

    @property
    def model_label(self) -> str:
        return self.model or "My OpenRouter default"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class State(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"

    # Answers worth a "Retry": they did not end the way the user wanted.
    FAILED_STATES = frozenset({State.ERROR, State.INTERRUPTED})

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.COMPLETE)
    # The upstream status ("402") or kind of failure ("dropped"), and the sentence the user reads.
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    model_requested = models.CharField(max_length=200, blank=True)  # blank: the account default
    model_served = models.CharField(max_length=200, blank=True)
    finish_reason = models.CharField(max_length=40, blank=True)
    generation_id = models.CharField(max_length=100, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    # Who writes a streaming answer (the relay's channel name, an address to send "stop" to) and
    # when it last said it was alive.
    writer = models.CharField(max_length=100, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "id"], name="chat_msg_conversation"),
            models.Index(
                fields=["heartbeat_at"],
                name="chat_msg_streaming_heartbeat",
                condition=models.Q(state="streaming"),
            ),
            # Answers that ended without their usage, for chat.services.usage_missing.
            models.Index(
                fields=["updated_at"],
                name="chat_msg_usage_missing",
                condition=models.Q(completion_tokens__isnull=True) & ~models.Q(generation_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk} ({self.state})"

    @property
    def model_shown(self) -> str:
        """The model under an answer: the one that served it or, when none did (an answer that
        failed before the stream began), the one asked for ("" for the account's default)."""
        return self.model_served or self.model_requested

    @property
    def is_streaming(self) -> bool:
        return self.state == self.State.STREAMING

    @property
    def is_failed(self) -> bool:
        return self.state in self.FAILED_STATES

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    # --- state changes (pure: the caller saves) ---------------------------------------------

    def mark_complete(self, *, finish_reason: str = "") -> None:
        self._finish(self.State.COMPLETE)
        self.finish_reason = finish_reason

    def mark_stopped(self) -> None:
        self._finish(self.State.STOPPED)

    def mark_failed(self, code: str, message: str) -> None:
        self._finish(self.State.ERROR)
        self.error_code, self.error_message = code, message

    def mark_interrupted(self, code: str, message: str) -> None:
        self._finish(self.State.INTERRUPTED)
        self.error_code, self.error_message = code, message

    def record_usage(
        self, *, prompt_tokens: int, completion_tokens: int, cost: Decimal | None
    ) -> None:
        self.prompt_tokens, self.completion_tokens, self.cost = (
            prompt_tokens,
            completion_tokens,
            cost,
        )

    def _finish(self, state: str) -> None:
        # `writer` stays: it records who wrote the answer, and lets that writer still set the
        # true final state if the sweeper wrongly gave up on it (a process that froze a while).
        self.state = state


class RemovedAnswers(models.Model):
    """What a user's answers that are gone (answered again, edited, their conversation deleted)
    had cost, so that ``ChatUsage`` still counts them. Added to as they are deleted."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="removed_answers",
    )
    answers = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal(0))

    class Meta:
        verbose_name_plural = "removed answers"

    def __str__(self) -> str:
        return f"{self.answers} removed answers of user #{self.pk}"


class ChatUsage(User):
    """Users seen from the chat side: the admin's "usage and cost per user" page."""

    class Meta:
        proxy = True
        verbose_name = "chat usage per user"
        verbose_name_plural = "chat usage per user"
