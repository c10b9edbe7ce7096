from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Users and keys"  # allauth's e-mail addresses already show as "Accounts"

    def ready(self) -> None:
        from accounts import key_cache  # noqa: F401  (its signal receivers)
