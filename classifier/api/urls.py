from __future__ import annotations

from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from classifier.api.views import ImageViewSet, ModelVersionViewSet, PredictionViewSet, TrainingJobViewSet

app_name = "api"

router = DefaultRouter()
router.register("images", ImageViewSet, basename="image")
router.register("predictions", PredictionViewSet, basename="prediction")
router.register("training-jobs", TrainingJobViewSet, basename="training-job")
router.register("model-versions", ModelVersionViewSet, basename="model-version")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="token"),
    *router.urls,
]
