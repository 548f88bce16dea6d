"""`vlmtune-operator` / `python -m vlmtune_operator`: run the kopf operator."""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlmtune-operator", description="Turn vlmtune jobs into KubeRay RayJobs.")
    parser.add_argument(
        "--runtime",
        default=os.environ.get("VLMTUNE_RUNTIME_CONFIG"),
        metavar="FILE",
        help="runtime config YAML, plain or a ConfigMap (env VLMTUNE_RUNTIME_CONFIG)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable); all namespaces when omitted",
    )
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", metavar="URL", help="liveness probe endpoint"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import kopf

    from vlmtune_operator.client import KubeClient
    from vlmtune_operator.handlers import configure, register
    from vlmtune_operator.runtime import load_runtime

    runtime = load_runtime(args.runtime)
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(configure)
    register(registry, lambda: KubeClient.from_environment(runtime.kueue_api_version), runtime)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
