#!/usr/bin/env bash
# icpflow's namespace and search attributes on the Temporal server. The `temporal-search-attributes` one-shot service
# of docker-compose.yml runs it (temporalio/admin-tools) once the server is healthy; the worker and the API start
# only after it succeeded, because an order's workflow cannot start without its search attributes.
#
# Idempotent: creates the namespace when it is missing (with TEMPORAL_NAMESPACE_RETENTION; an existing namespace's
# retention is left alone) and every attribute that is missing; an attribute that exists with another type is an
# error, because the workflow would fail to upsert it.
set -euo pipefail

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS, e.g. temporal:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${TEMPORAL_NAMESPACE_RETENTION:=30d}"

# The search attributes of models/search.py, NAME=Type. Keep the two in step: tests/test_compose.py compares them.
ATTRIBUTES=(
    IcpOrderId=Keyword
    IcpStage=Keyword
    IcpProvince=Keyword
    IcpKind=Keyword
    IcpOverdue=Bool
)

tctl() { temporal --address "$TEMPORAL_ADDRESS" "$@"; }

for _ in $(seq 60); do
    tctl operator cluster health >/dev/null 2>&1 && break
    echo "waiting for the Temporal frontend at $TEMPORAL_ADDRESS"
    sleep 2
done

if tctl operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $TEMPORAL_NAMESPACE exists"
else
    echo "creating namespace $TEMPORAL_NAMESPACE (retention $TEMPORAL_NAMESPACE_RETENTION)"
    tctl operator namespace create --namespace "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_NAMESPACE_RETENTION"
fi

# A namespace just created takes a few seconds to reach every frontend's cache.
existing=""
for _ in $(seq 30); do
    if existing="$(tctl operator search-attribute list --namespace "$TEMPORAL_NAMESPACE" --output json 2>/dev/null)"; then
        break
    fi
    echo "waiting for namespace $TEMPORAL_NAMESPACE to be usable"
    sleep 2
done
[[ -n "$existing" ]] || { echo "namespace $TEMPORAL_NAMESPACE never became usable" >&2; exit 1; }

for attribute in "${ATTRIBUTES[@]}"; do
    name="${attribute%%=*}"
    type="${attribute##*=}"
    current="$(jq -r --arg name "$name" '.customAttributes[$name] // empty' <<<"$existing")"
    if [[ -z "$current" ]]; then
        echo "registering $name ($type)"
        tctl operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" --name "$name" --type "$type"
    elif [[ "$current" == "INDEXED_VALUE_TYPE_${type^^}" ]]; then
        echo "$name ($type) is registered"
    else
        echo "$name exists as $current, but icpflow needs $type: fix it by hand (see docs/operations.md)" >&2
        exit 1
    fi
done
echo "namespace $TEMPORAL_NAMESPACE has every icpflow search attribute"
