from datetime import datetime

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.html import format_html

from accounts.models import OpenRouterKey, User


class OpenRouterKeyInline(admin.StackedInline):
    model = OpenRouterKey
    fields = ("hint", "label", "source", "created_at", "updated_at")
    readonly_fields = fields
    can_delete = False
    extra = 0

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("-date_joined",)
    # Fits a 1280 px window beside the filters: short headers, dates without the time (the
    # time shows on hover), and long addresses wrap (css/admin.css, on every admin page).
    list_display = ("email", "connected", "staff", "active", "joined", "last_sign_in")
    list_filter = ("is_staff", "is_active", "date_joined")
    search_fields = ("email", "first_name", "last_name")
    inlines = [OpenRouterKeyInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "default_model")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).select_related("openrouter_key")

    @admin.display(boolean=True, description="OpenRouter")
    def connected(self, user: User) -> bool:
        return hasattr(user, "openrouter_key")

    @admin.display(boolean=True, description="Staff", ordering="is_staff")
    def staff(self, user: User) -> bool:
        return user.is_staff

    @admin.display(boolean=True, description="Active", ordering="is_active")
    def active(self, user: User) -> bool:
        return user.is_active

    @admin.display(description="Joined", ordering="date_joined")
    def joined(self, user: User) -> str | None:
        return _day(user.date_joined)

    @admin.display(description="Last sign-in", ordering="last_login")
    def last_sign_in(self, user: User) -> str | None:
        return _day(user.last_login)


def _day(moment: datetime | None) -> str | None:
    """``2026-12-06``, its full time in a tooltip; None (the admin's "-") for never."""
    if moment is None:
        return None
    moment = timezone.localtime(moment)
    full = formats.date_format(moment, "DATETIME_FORMAT")
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        full,
        moment.date().isoformat(),
    )


@admin.register(OpenRouterKey)
class OpenRouterKeyAdmin(admin.ModelAdmin):
    """Keys are shown by their hint only; the encrypted value is not even listed."""

    list_display = ("user", "hint", "label", "source", "updated_at")
    list_filter = ("source",)
    search_fields = ("user__email", "label", "hint")
    fields = ("user", "hint", "label", "source", "openrouter_user_id", "created_at", "updated_at")
    readonly_fields = fields
    list_select_related = ("user",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke (delete) the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[OpenRouterKey]) -> None:
        count, _ = queryset.delete()
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
