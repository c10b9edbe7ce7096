"""Websocket routes of every app, in one list (mirrors config/urls.py for HTTP)."""

from django.urls import path

from chat.consumers import ChatConsumer
from generations.consumers import GenerationsConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    path("ws/generations/", GenerationsConsumer.as_asgi()),
]
