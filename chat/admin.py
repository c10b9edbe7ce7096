"""Chat in the admin: conversations and messages to read for support (never to edit), and usage
and cost per user."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.timezone import localtime

from accounts.templatetags.money import money
from chat import services
from chat.models import ChatUsage, Conversation, Message
from chat.templatetags.chat_format import thousands


class ReadOnlyAdmin(admin.ModelAdmin):
    """Support reads what users wrote and what models answered; nobody rewrites it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("id", "role", "state", "short_content", "model_served", "cost", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="content")
    def short_content(self, message: Message) -> str:
        return message.content[:160] + ("…" if len(message.content) > 160 else "")


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("title", "user", "model_label", "message_count", "updated_at")
    list_filter = ("messages__state", "updated_at")
    search_fields = ("title", "user__email")
    list_select_related = ("user",)
    date_hierarchy = "updated_at"
    fields = (
        "user",
        "title",
        "model",
        "system_prompt",
        "temperature",
        "max_tokens",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [MessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(message_count=Count("messages")).distinct()

    # Deleted as a user deletes one (chat.services.conversation_delete): its answers still
    # streaming stop, its open tabs are told, and what its answers cost stays in the usage.
    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        services.conversation_delete(conversation=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            services.conversation_delete(conversation=conversation)

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Any) -> int:
        return int(conversation.message_count)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    # Narrow enough for a 1280 px window with the admin's sidebar and filters open: long text is
    # cut short, related figures share a column, and the time to the first token is left to the
    # message's page.
    list_display = ("id", "conversation_link", "summary", "usage", "created")
    list_filter = ("state", "role", "error_code", "created_at")
    search_fields = ("conversation__user__email", "conversation__title", "model_served", "=id")
    list_select_related = ("conversation__user",)
    date_hierarchy = "created_at"
    fields = (
        "conversation",
        "role",
        "state",
        "content",
        "error_code",
        "error_message",
        "model_requested",
        "model_served",
        "finish_reason",
        "generation_id",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "time_to_first_token_ms",
        "writer",
        "heartbeat_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="conversation", ordering="conversation__title")
    def conversation_link(self, message: Message) -> str:
        """The conversation's title and, under it, its user's email, both cut short (in full on
        hover)."""
        url = reverse("admin:chat_conversation_change", args=[message.conversation_id])
        title, email = message.conversation.title, message.conversation.user.email
        return format_html(
            '<a href="{}" title="{}">{}</a><br><span class="quiet" title="{}">{}</span>',
            url,
            title,
            Truncator(title).chars(60),
            email,
            Truncator(email).chars(24),
        )

    @admin.display(description="message", ordering="state")
    def summary(self, message: Message) -> str:
        """``user``, or an answer's state (``assistant, error 402``) and the model that served it
        under it."""
        if message.role == Message.Role.USER:
            return message.role
        state = f"{message.role}, {message.state} {message.error_code}".strip()
        return format_html('{}<br><span class="quiet">{}</span>', state, message.model_served)

    @admin.display(description="cost", ordering="cost")
    def usage(self, message: Message) -> str:
        """The answer's cost, and its tokens under it."""
        if message.completion_tokens is None:
            return money(message.cost)
        tokens = f"{thousands(message.completion_tokens)} tokens"
        return format_html('{}<br><span class="quiet">{}</span>', money(message.cost), tokens)

    @admin.display(description="created", ordering="created_at")
    def created(self, message: Message) -> str:
        # Text, not the datetime: the admin never wraps a date's column, and it needs to.
        return localize(localtime(message.created_at))


@admin.register(ChatUsage)
class ChatUsageAdmin(ReadOnlyAdmin):
    """Usage and cost per user, summed over every answer they received: those still in their
    conversations, and those answered again, edited or deleted since (``RemovedAnswers``). An
    answer deleted before its usage was known (still streaming, or stopped and not yet filled in
    by ``chat.tasks.fill_missing_usage``) counts without its tokens and cost."""

    list_display = ("email", "conversations", "answers", "tokens", "total_cost", "last_answer")
    search_fields = ("email",)
    fields = ("email", "conversations", "answers", "tokens", "total_cost", "last_answer")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        answers = Q(conversations__messages__role=Message.Role.ASSISTANT)

        def total(name: str, zero: Any = 0) -> Any:
            """The figure summed over the user's answers, and their removed answers' added."""
            kept = Coalesce(Sum(f"conversations__messages__{name}"), zero)
            return kept + Coalesce(F(f"removed_answers__{name}"), zero)

        # Not super(): it would sort by the annotation before it exists.
        return ChatUsage.objects.get_queryset().annotate(
            conversation_count=Count("conversations", distinct=True),
            answer_count=Count("conversations__messages", filter=answers)
            + Coalesce(F("removed_answers__answers"), 0),
            prompt_sum=total("prompt_tokens"),
            completion_sum=total("completion_tokens"),
            total_cost_sum=total("cost", Decimal(0)),
            last_answer_at=Max("conversations__messages__created_at", filter=answers),
        )

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        return ("-total_cost_sum",)  # a method: the `ordering` check cannot see annotations

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # this page summarises; users are deleted from the Users page

    @admin.display(ordering="conversation_count")
    def conversations(self, user: Any) -> int:
        return int(user.conversation_count)

    @admin.display(ordering="answer_count")
    def answers(self, user: Any) -> int:
        return int(user.answer_count)

    @admin.display(description="tokens (prompt → completion)", ordering="completion_sum")
    def tokens(self, user: Any) -> str:
        return f"{thousands(user.prompt_sum or 0)} → {thousands(user.completion_sum or 0)}"

    @admin.display(description="cost", ordering="total_cost_sum")
    def total_cost(self, user: Any) -> str:
        return money(user.total_cost_sum or 0)

    @admin.display(ordering="last_answer_at")
    def last_answer(self, user: Any) -> str:
        # As the admin shows a date (a method's value is shown as str() on the user's own page).
        return display_for_value(user.last_answer_at, self.get_empty_value_display())
