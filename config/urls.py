from django.contrib import admin
from django.urls import path

from snapshots import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", views.health, name="health"),
    path("metrics", views.prometheus_metrics, name="metrics"),
]
