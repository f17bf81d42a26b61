#!/usr/bin/env python3
"""Checks docs/grafana-vigil.json, the sample Grafana dashboard of `vigil serve`, against the
metrics the daemon defines, so the dashboard cannot drift from the code unnoticed.

    check_grafana_dashboard.py DASHBOARD SERVE_METRICS_CC [EXPOSITION]

Checks that the dashboard
  * is well-formed JSON in the shape Grafana 9/10 imports (title, uid, schemaVersion, panels with
    unique ids on the 24-column grid);
  * queries Prometheus through the datasource variable ${DS_PROMETHEUS} (declared in templating)
    in every panel and every target;
  * uses only metric names that adapters/serve_metrics.cc registers (a histogram's _bucket, _sum
    and _count series included), and every one of them at least once (a new metric needs a panel);
and, given EXPOSITION (a /metrics page of a running daemon, as scripts/serve-demo.sh saves it),
that every metric the dashboard queries is exported and every label it groups or names a legend
by is on that metric (Prometheus adds instance and job; le is the histogram's).

Prints each problem and exits 1, or prints a one-line summary and exits 0.
"""
import json
import re
import sys

NAME = re.compile(r"\bvigil_[a-z0-9_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
ADDED_BY_PROMETHEUS = {"instance", "job"}


def defined_metrics(source_text):
    """(every name, histogram names) registered in serve_metrics.cc."""
    names = set(re.findall(r'"(vigil_[a-z0-9_]+)"', source_text))
    histograms = set(re.findall(r'BuildHistogram\(\)\s*\.Name\("(vigil_[a-z0-9_]+)"\)', source_text))
    return names, histograms


def base_name(name, histograms):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name


def exposition_labels(text):
    """{sample name: set of label names} from a Prometheus text exposition."""
    labels = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            keys = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            labels.setdefault(m.group(1), set()).update(keys)
    return labels


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    problems = []
    try:
        with open(argv[1]) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print(f"{argv[1]}: not valid JSON: {e}")
        return 1
    with open(argv[2]) as f:
        names, histograms = defined_metrics(f.read())
    if not names:
        print(f"{argv[2]}: no metric names found")
        return 1
    exposition = None
    if len(argv) == 4:
        with open(argv[3]) as f:
            exposition = exposition_labels(f.read())

    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in dash:
            problems.append(f"no top-level '{key}'")
    if not isinstance(dash.get("schemaVersion"), int) or dash.get("schemaVersion", 0) < 36:
        problems.append("schemaVersion should be that of Grafana 9 or 10 (36 or more)")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds_var = variables.get("DS_PROMETHEUS")
    if ds_var is None or ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus":
        problems.append("templating has no Prometheus datasource variable DS_PROMETHEUS")

    def check_datasource(where, ds):
        if not isinstance(ds, dict) or ds.get("uid") != "${DS_PROMETHEUS}" or ds.get("type") != "prometheus":
            problems.append(f"{where}: datasource is not the prometheus ${{DS_PROMETHEUS}}: {ds!r}")

    # Every query: (where, expression, legend).
    queries = []
    for name, var in variables.items():
        if var.get("type") == "query":
            check_datasource(f"variable {name}", var.get("datasource"))
            query = var.get("query")
            queries.append((f"variable {name}", query.get("query", "") if isinstance(query, dict) else query, ""))
    ids = set()
    panels = list(dash.get("panels", []))
    for p in dash.get("panels", []):
        panels.extend(p.get("panels", []))   # inside collapsed rows
    for p in panels:
        where = f"panel {p.get('id')} '{p.get('title')}'"
        if p.get("id") in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(p.get("id"))
        grid = p.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: gridPos {grid} is not on the 24-column grid")
        if p.get("type") == "row":
            continue
        check_datasource(where, p.get("datasource"))
        if not p.get("targets"):
            problems.append(f"{where}: no targets")
        for t in p.get("targets", []):
            check_datasource(f"{where} target {t.get('refId')}", t.get("datasource"))
            if not t.get("expr", "").strip():
                problems.append(f"{where} target {t.get('refId')}: empty expr")
            queries.append((f"{where} target {t.get('refId')}", t.get("expr", ""), t.get("legendFormat", "")))

    used = set()
    for where, expr, legend in queries:
        metrics = set(NAME.findall(expr))
        if not metrics:
            problems.append(f"{where}: queries no vigil_ metric: {expr}")
        for m in metrics:
            base = base_name(m, histograms)
            used.add(base)
            if base not in names:
                problems.append(f"{where}: {m} is not a metric of {argv[2]}")
            elif exposition is not None and m not in exposition:
                problems.append(f"{where}: {m} is not in the exposition {argv[3]}")
        if exposition is None:
            continue
        wanted = set()
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            wanted.update(x.strip() for x in group.split(",") if x.strip())
        wanted.update(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend))
        have = set(ADDED_BY_PROMETHEUS)
        for m in metrics:
            have |= exposition.get(m, set())
        for label in sorted(wanted - have):
            problems.append(f"{where}: label '{label}' is on none of {sorted(metrics)} in the exposition")
    for name in sorted(names - used):
        problems.append(f"metric {name} of {argv[2]} is on no panel")

    for p in problems:
        print(f"{argv[1]}: {p}")
    if problems:
        return 1
    print(f"{argv[1]}: OK: {len(panels)} panels, {len(queries)} queries over {len(used)} metrics"
          + (" (all exported, labels present)" if exposition is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
