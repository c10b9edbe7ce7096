"""The chat pages. The page is server-rendered; messages then come and go over the websocket
(``chat.consumers``). Every view finds conversations through the signed-in user, so another
user's conversation is a 404."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_http_methods, require_POST

from accounts.http import AuthedRequest
from accounts.models import OpenRouterKey
from chat import services
from chat.forms import (
    ConversationOptionsForm,
    ConversationSettingsForm,
    ModelChoiceForm,
    RenameForm,
)
from chat.models import Conversation
from chat.protocol import ChatError
from openrouter.catalogue import models_catalogue


@login_required
def index(request: AuthedRequest) -> HttpResponse:
    """The conversation list beside an empty conversation: the prompt box starts a new one."""
    return _page(request, None)


@login_required
def conversation(request: AuthedRequest, conversation_id: int) -> HttpResponse:
    return _page(request, _own(request, conversation_id))


def _page(
    request: AuthedRequest,
    conversation: Conversation | None,
    settings_form: ConversationSettingsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    query = _search_words(request)
    if conversation is not None and settings_form is None:
        settings_form = ConversationSettingsForm(instance=conversation)
    listed = services.conversations_page(user=request.user, query=query, through=conversation)
    shown = (
        services.messages_page(conversation=conversation, words=query)
        if conversation is not None
        else services.MessagePage([], None)
    )
    context = {
        "conversation": conversation,
        "conversations": listed.conversations,
        "older": listed.older,
        # A search says how many it found, beyond the page listed too.
        "found": (
            services.conversations_for(user=request.user, query=query).count()
            if query and listed.older
            else len(listed.conversations)
        ),
        "query": query,
        "open_pk": conversation.pk if conversation else None,
        "back": _list_page_url(conversation.pk if conversation else None, query),
        "chat_messages": shown.messages,
        "earlier": shown.earlier,
        "model": conversation.model if conversation else request.user.default_model,
        "connected": OpenRouterKey.objects.filter(user=request.user).exists(),
        "settings_form": settings_form,
        "options_form": ConversationOptionsForm() if conversation is None else None,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "silence_hint_ms": round(settings.CHAT_SILENCE_HINT * 1000),
    }
    return render(request, "chat/index.html", context, status=status)


@login_required
def conversation_list(request: AuthedRequest) -> HttpResponse:
    """The list's next rows, older than ``?before=`` (the sidebar's "Show older" fetches them),
    with the open conversation's row marked (``?open=``) and the search (``?q=``) kept."""
    query = _search_words(request)
    try:
        listed = services.conversations_page(
            user=request.user, query=query, before=request.GET.get("before", "")
        )
    except ChatError as error:
        return HttpResponse(error.message, status=400, content_type="text/plain")
    open_pk = int(opened) if (opened := request.GET.get("open", "")).isdigit() else None
    context = {
        "conversations": listed.conversations,
        "older": listed.older,
        "query": query,
        "open_pk": open_pk,
        "back": _list_page_url(open_pk, query),
        "more_page": True,
    }
    return render(request, "chat/_conversation_rows.html", context)


def _list_page_url(open_pk: int | None, query: str) -> str:
    """The page the list is on, its search kept: its rows' Rename and Delete come back to it."""
    path = reverse("chat:conversation", args=[open_pk]) if open_pk else reverse("chat:index")
    return f"{path}?{urlencode({'q': query})}" if query else path


def _back(request: HttpRequest, default: str) -> str:
    """The form's ``next``: a page of this site (never another's), else ``default``."""
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return back
    return default


def _search_words(request: HttpRequest) -> str:
    """The list's search (``?q=``). PostgreSQL cannot hold or compare NUL: a search for it
    simply finds nothing else."""
    return request.GET.get("q", "").replace("\x00", "")[:200]


@login_required
def conversation_messages(request: AuthedRequest, conversation_id: int) -> HttpResponse:
    """The messages just before ``?before=`` (the log's "Show earlier" fetches them), or the
    latest without it."""
    conversation = _own(request, conversation_id)
    before = request.GET.get("before", "")
    if before and not before.isdigit():
        return HttpResponse(
            "That place in the conversation does not exist.", status=400, content_type="text/plain"
        )
    shown = services.messages_page(
        conversation=conversation, before=int(before) if before else None
    )
    context = {
        "conversation": conversation,
        "chat_messages": shown.messages,
        "earlier": shown.earlier,
    }
    return render(request, "chat/_messages.html", context)


def _own(request: AuthedRequest, conversation_id: int) -> Conversation:
    return get_object_or_404(Conversation, pk=conversation_id, user=request.user)


@login_required
@require_POST
def conversation_rename(request: AuthedRequest, conversation_id: int) -> HttpResponse:
    conversation = _own(request, conversation_id)
    form = RenameForm(request.POST, instance=conversation)
    if form.is_valid():
        services.conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    else:
        messages.error(request, "A title cannot be empty.")
    return redirect(_back(request, reverse("chat:conversation", args=[conversation.pk])))


@login_required
@require_http_methods(["GET", "POST"])
def conversation_settings(request: AuthedRequest, conversation_id: int) -> HttpResponse:
    conversation = _own(request, conversation_id)
    if request.method == "GET":  # a reload of settings sent back with their errors
        return redirect("chat:conversation", conversation_id=conversation.pk)
    form = ConversationSettingsForm(request.POST, instance=conversation)
    if not form.is_valid():
        return _page(request, conversation, settings_form=form, status=400)
    form.save()
    messages.success(request, "Conversation settings saved.")
    return redirect("chat:conversation", conversation_id=conversation.pk)


@login_required
@require_POST
def conversation_model(request: AuthedRequest, conversation_id: int) -> HttpResponse:
    """The model picker's choice, remembered for the conversation (answers JSON for fetch)."""
    conversation = _own(request, conversation_id)
    form = ModelChoiceForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": form.errors["model"][0]}, status=400)
    services.conversation_set_model(conversation=conversation, model=form.cleaned_data["model"])
    return JsonResponse({"model": conversation.model, "label": conversation.model_label})


@login_required
@require_POST
def conversation_delete(request: AuthedRequest, conversation_id: int) -> HttpResponse:
    conversation = _own(request, conversation_id)
    deleted_url = reverse("chat:conversation", args=[conversation.pk])
    services.conversation_delete(conversation=conversation)
    messages.success(request, f"Deleted “{conversation.title}”.")
    back = urlsplit(_back(request, reverse("chat:index")))
    if back.path == deleted_url:  # it was open: a new chat, in the same search
        back = back._replace(path=reverse("chat:index"))
    return redirect(urlunsplit(back))


@login_required
async def models_json(request: HttpRequest) -> JsonResponse:
    """The picker's model list. Async so that a cold cache's short wait holds no shared thread."""
    catalogue = await sync_to_async(models_catalogue, thread_sensitive=False)()
    return JsonResponse(
        {
            "models": catalogue.models,
            "fetched_at": catalogue.fetched_at,
            "refreshing": catalogue.refreshing,
        }
    )
