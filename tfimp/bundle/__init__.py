"""Deployment bundles: a folder per device family that runs a .tflite model, checked first.

Example:
    >>> tfimp.bundle.build("model.tflite", "rpi", "out/rpi")           # doctest: +SKIP
    >>> tfimp.bundle.deploy_rpi("pi@raspberrypi.local", "out/rpi")     # doctest: +SKIP
"""

from tfimp.bundle.build import build
from tfimp.bundle.deploy import DeployError, DeployResult, deploy_rpi
from tfimp.bundle.kotlin import kotlin_sample
from tfimp.bundle.manifest import Preprocessing, read_manifest, verify_bundle
from tfimp.bundle.targets import TARGETS, BundleError, Target, get

__all__ = ["TARGETS", "BundleError", "DeployError", "DeployResult", "Preprocessing", "Target",
           "build", "deploy_rpi", "get", "kotlin_sample", "read_manifest", "verify_bundle"]
