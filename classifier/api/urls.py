from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from classifier.api.auth import RevokeAllTokensView, RevokeTokenView, TokenView
from classifier.api.views import (
    AuditEventViewSet,
    BatchViewSet,
    ImageViewSet,
    LesionReportView,
    LesionViewSet,
    ModelVersionViewSet,
    PatientReportView,
    PatientViewSet,
    PredictionViewSet,
    TrainingJobViewSet,
)
from classifier.api.webhooks import WebhookEndpointViewSet

app_name = "api"

router = DefaultRouter()
router.register("images", ImageViewSet, basename="image")
router.register("predictions", PredictionViewSet, basename="prediction")
router.register("batches", BatchViewSet, basename="batch")
router.register("training-jobs", TrainingJobViewSet, basename="training-job")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("patients", PatientViewSet, basename="patient")
router.register("lesions", LesionViewSet, basename="lesion")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    path("auth/token/revoke/", RevokeTokenView.as_view(), name="token-revoke"),
    path("auth/token/revoke-all/", RevokeAllTokensView.as_view(), name="token-revoke-all"),
    # Beside the router's routes, which would end in a slash (report.pdf/).
    path("patients/<int:pk>/report.pdf", PatientReportView.as_view(), name="patient-report"),
    path("lesions/<int:pk>/report.pdf", LesionReportView.as_view(), name="lesion-report"),
    *router.urls,
]
