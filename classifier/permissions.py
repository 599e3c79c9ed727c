"""The Django permissions that grant the platform's own work: labelling, model versions, training jobs.

Being staff only lets someone into the admin; what they may do there, in the API and on the
pages is granted by these model permissions (superusers hold them all, through has_perm).
Clinic records are never granted this way: their gate is the clinic role (classifier.access).
"""

from __future__ import annotations

# A confirmed diagnosis changes images' labels, as the admin's image change form does.
LABEL_PERMISSION = "classifier.change_lesionimage"
# /healthz's details name the workers and the active version: for whoever watches the models.
HEALTH_DETAIL_PERMISSION = "classifier.view_modelversion"

VIEW_VERSIONS = "classifier.view_modelversion"
CHANGE_VERSIONS = "classifier.change_modelversion"  # activate, roll back, choose an operating point
VIEW_JOBS = "classifier.view_trainingjob"
START_JOBS = "classifier.add_trainingjob"
CANCEL_JOBS = "classifier.change_trainingjob"


def may_label(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(LABEL_PERMISSION))
