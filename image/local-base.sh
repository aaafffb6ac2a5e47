#!/usr/bin/env bash
# Builds a local stand-in for python:3.11.7-slim-bookworm from Debian's own packages, for machines that
# reach a Debian mirror and PyPI but no container registry (air-gapped, or behind a proxy without Docker Hub).
# Give it to the Dockerfile: `make image PYTHON_IMAGE=kfp-distill-local-base:bookworm` (`make local-base`
# runs this script).
#
#   docker/local-base.sh [TAG]        TAG defaults to kfp-distill-local-base:bookworm
#
# Environment:
#   DEBIAN_MIRROR  the bookworm mirror (default http://deb.debian.org/debian)
#   HOST_CA_BUNDLE a CA bundle copied into the base and named by PIP_CERT, SSL_CERT_FILE and
#                  REQUESTS_CA_BUNDLE, for HTTPS through a proxy only this host's bundle trusts (default
#                  /etc/ssl/certs/ca-certificates.crt when it exists; set it empty to copy none). Only this
#                  base carries it: an image built on the official base carries nothing of this machine's.
#
# Needs root, debootstrap and a running Docker daemon; installs debootstrap with apt-get when it is absent.
set -euo pipefail

TAG="${1:-kfp-distill-local-base:bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
# Where the copied bundle lives inside the base: away from /etc/ssl/certs, which ca-certificates regenerates.
BASE_CA_BUNDLE=/etc/ssl/host-ca-bundle.crt

if [ "$(id -u)" -ne 0 ]; then
    echo "docker/local-base.sh: needs root (debootstrap)" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    apt-get update -q && apt-get install --yes -q debootstrap
fi
docker info >/dev/null 2>&1 || { echo "docker/local-base.sh: no Docker daemon answers 'docker info'" >&2; exit 1; }
if [ -n "${HOST_CA_BUNDLE}" ] && [ ! -f "${HOST_CA_BUNDLE}" ]; then
    echo "docker/local-base.sh: HOST_CA_BUNDLE=${HOST_CA_BUNDLE} is not a file" >&2
    exit 1
fi

ROOT="$(mktemp -d /tmp/kfp-distill-base.XXXXXX)"
trap 'rm -rf "${ROOT}"' EXIT

debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,python3-dev,python-is-python3,ca-certificates \
    bookworm "${ROOT}" "${DEBIAN_MIRROR}"
# The Dockerfile's apt-get installs need the same sources the official image has (updates and security).
cat > "${ROOT}/etc/apt/sources.list" <<SOURCES
deb ${DEBIAN_MIRROR} bookworm main
deb ${DEBIAN_MIRROR} bookworm-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security bookworm-security main
SOURCES
# PEP 668: Debian's marker makes `pip install` refuse outside a venv; the official image has none.
rm -f "${ROOT}"/usr/lib/python3*/EXTERNALLY-MANAGED
# `pip` on the PATH as in the official image (Debian ships pip3 only).
[ -e "${ROOT}/usr/bin/pip" ] || ln -s pip3 "${ROOT}/usr/bin/pip"
rm -rf "${ROOT}"/var/lib/apt/lists/* "${ROOT}"/var/cache/apt/archives/*.deb

ENV_CHANGES=(--change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" --change "ENV LANG=C.UTF-8")
if [ -n "${HOST_CA_BUNDLE}" ]; then
    cp "${HOST_CA_BUNDLE}" "${ROOT}${BASE_CA_BUNDLE}"
    for var in PIP_CERT SSL_CERT_FILE REQUESTS_CA_BUNDLE; do
        ENV_CHANGES+=(--change "ENV ${var}=${BASE_CA_BUNDLE}")
    done
fi
tar -C "${ROOT}" --numeric-owner -c . | docker import "${ENV_CHANGES[@]}" --change 'CMD ["python3"]' - "${TAG}"
docker run --rm --network host "${TAG}" sh -c 'python --version && pip --version'
echo "built ${TAG}"
