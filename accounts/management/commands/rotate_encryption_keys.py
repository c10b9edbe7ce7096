from typing import Any

from django.core.management.base import BaseCommand

from accounts.services import api_key_rotate_all


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored OpenRouter key under the first FIELD_ENCRYPTION_KEYS key. "
        "Put the new key first, keep the old ones, run this, then drop the old keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = api_key_rotate_all()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} key(s)."))
