from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models

from openrouter import website


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: object) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: object) -> "User":
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> "User":
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractUser):
    """A person; the email address is the login."""

    username = None  # type: ignore[assignment]
    email = models.EmailField("email address", unique=True)
    # Model id for new chats; blank means "my OpenRouter default" (no `model` sent upstream).
    default_model = models.CharField(max_length=200, blank=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()  # type: ignore[assignment,misc]

    def __str__(self) -> str:
        return self.email


class OpenRouterKey(models.Model):
    """A user's OpenRouter API key, encrypted at rest (see accounts/crypto.py).

    Only ``accounts.services.api_key_for`` and ``api_key_from`` decrypt ``encrypted_key`` (the
    latter its copy in ``accounts.key_cache``); everything else sees ``hint`` and ``key_hash``.
    """

    class Source(models.TextChoices):
        OAUTH = "oauth", "Connected with OpenRouter"
        PASTED = "pasted", "Pasted by hand"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="openrouter_key"
    )
    encrypted_key = models.BinaryField(editable=False)
    hint = models.CharField(max_length=40, editable=False)  # "sk-or-v1-…9f3a"
    key_hash = models.CharField(max_length=64, editable=False)  # sha256 hex: OpenRouter's key URL
    label = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    openrouter_user_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OpenRouter key"

    def __str__(self) -> str:
        return f"{self.hint} ({self.user})"

    @property
    def page_url(self) -> str:
        """This key's page on OpenRouter (the sandbox's, offline)."""
        return website.key_url(self.key_hash)
