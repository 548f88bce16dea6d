"""`vlmtune crds [--write DIR]`: the CustomResourceDefinitions generated from the spec models."""

from __future__ import annotations

import sys

from vlmtune.spec.crd import generate_crds, to_yaml, write_crds


def register(add_parser, name: str) -> None:
    parser = add_parser(name, help="print (or write) the CRDs generated from the spec models")
    parser.add_argument("--write", metavar="DIR", help="write one file per kind into DIR (e.g. charts/vlmtune/crds)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    if args.write:
        for path in write_crds(args.write):
            print(f"wrote {path}")
        return 0
    sys.stdout.write("---\n".join(to_yaml(crd) for crd in generate_crds()))
    return 0
