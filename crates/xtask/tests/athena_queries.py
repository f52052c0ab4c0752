"""The stack's Athena side without Athena: the Glue table and the four named queries of
infra-main/template.yaml are parsed as Athena parses them (sqlglot: Hive DDL for the table,
Trino for the queries), every column a query names must be a column of the table or a name
the query defines, and, given a change log, each query runs on it through DuckDB after
translation from Trino, where the two dialects agree.

Usage: athena_queries.py TEMPLATE [CHANGE_LOG_DIR]
CHANGE_LOG_DIR holds the change log as Firehose lays it out: <YYYY/MM/DD/HH>/<object>, JSON
lines. Prints one JSON document: per query, whether it parsed, the rows it returned or why it
could not run here. Exits 1 when anything fails to parse or names an unknown column.
"""

import json
import os
import sys

import sqlglot
from cfnlint.decode import decode
from sqlglot import exp


def resources(template, kind):
    return {
        name: r["Properties"]
        for name, r in template["Resources"].items()
        if isinstance(r, dict) and r.get("Type") == kind
    }


def glue_ddl(table):
    """The Glue table as the CREATE EXTERNAL TABLE statement Athena would show for it."""
    t = table["TableInput"]
    sd = t["StorageDescriptor"]
    cols = ",\n  ".join(f"`{c['Name']}` {c['Type']}" for c in sd["Columns"])
    parts = ", ".join(f"`{c['Name']}` {c['Type']}" for c in t["PartitionKeys"])
    serde = sd["SerdeInfo"]["SerializationLibrary"]
    return (
        f"CREATE EXTERNAL TABLE `{t['Name']}` (\n  {cols}\n) PARTITIONED BY ({parts}) "
        f"ROW FORMAT SERDE '{serde}' LOCATION 's3://bucket/dynamodb-changes/'"
    )


def defined_names(tree):
    """Names a query defines itself: column aliases and CTE names."""
    names = {a.alias for a in tree.find_all(exp.Alias)}
    names |= {c.alias for c in tree.find_all(exp.CTE)}
    return names


def check_queries(template, report):
    tables = resources(template, "AWS::Glue::Table")
    assert len(tables) == 1, tables
    table = next(iter(tables.values()))
    ddl = glue_ddl(table)
    ok = True
    try:
        created = sqlglot.parse_one(ddl, read="athena")
        types = {c.name: c.args["kind"].sql("hive") for c in created.find_all(exp.ColumnDef)}
        report["glue_table"] = {"parsed": True, "columns": types}
    except sqlglot.errors.ParseError as e:
        report["glue_table"] = {"parsed": False, "error": str(e)}
        return False, None, {}
    t = table["TableInput"]
    columns = {c["Name"] for c in t["StorageDescriptor"]["Columns"]}
    columns |= {c["Name"] for c in t["PartitionKeys"]}
    queries = {}
    for name, q in resources(template, "AWS::Athena::NamedQuery").items():
        entry = {"name": q["Name"]}
        report["queries"][q["Name"]] = entry
        try:
            tree = sqlglot.parse_one(q["QueryString"], read="trino")
        except sqlglot.errors.ParseError as e:
            entry.update(parsed=False, error=str(e))
            ok = False
            continue
        entry["parsed"] = True
        read_tables = {
            tb.name for tb in tree.find_all(exp.Table)
        } - {c.alias for c in tree.find_all(exp.CTE)}
        if read_tables != {t["Name"]}:
            entry["error"] = f"reads {sorted(read_tables)}, not {t['Name']}"
            ok = False
        unknown = sorted(
            {c.name for c in tree.find_all(exp.Column)} - columns - defined_names(tree)
        )
        if unknown:
            entry["error"] = f"unknown columns {unknown}"
            ok = False
        queries[q["Name"]] = q["QueryString"]
    return ok, t, queries


def load_change_log(con, table, folder):
    """The change log in DuckDB with the Glue table's columns: images and JSON-typed fields
    as the JSON text OpenX gives a string column, keys as a map of strings."""
    con.execute(
        f"""CREATE TABLE {table['Name']} (
          event_id VARCHAR, event_name VARCHAR, "table" VARCHAR, keys MAP(VARCHAR, VARCHAR),
          new_image VARCHAR, old_image VARCHAR,
          changed_attributes STRUCT(added VARCHAR[], removed VARCHAR[], modified VARCHAR[]),
          sequence_number VARCHAR, approximate_creation_time VARCHAR, stream_view_type VARCHAR,
          ttl_expired BOOLEAN, region VARCHAR, images_omitted VARCHAR, datehour VARCHAR)"""
    )
    rows = []
    for root, _, files in os.walk(folder):
        datehour = os.path.relpath(root, folder)
        for f in files:
            with open(os.path.join(root, f), encoding="utf-8") as lines:
                for line in lines:
                    if not line.strip():
                        continue
                    r = json.loads(line)
                    text = lambda v: None if v is None else json.dumps(v, separators=(",", ":"))
                    keys = {k: v if isinstance(v, str) else json.dumps(v) for k, v in r["keys"].items()}
                    rows.append((
                        r["event_id"], r["event_name"], r["table"], keys,
                        text(r["new_image"]), text(r["old_image"]), r["changed_attributes"],
                        r["sequence_number"], r["approximate_creation_time"],
                        r["stream_view_type"], r["ttl_expired"], r["region"],
                        r["images_omitted"], datehour,
                    ))
    con.executemany(
        f"INSERT INTO {table['Name']} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
    )
    return len(rows)


def run_queries(table, queries, folder, report):
    import duckdb

    con = duckdb.connect()
    report["change_log_lines"] = load_change_log(con, table, folder)
    for name, sql in queries.items():
        entry = report["queries"][name]
        try:
            translated = sqlglot.transpile(sql, read="trino", write="duckdb")[0]
            entry["duckdb_sql"] = translated
            cur = con.execute(translated)
            cols = [d[0] for d in cur.description]
            entry["rows"] = [
                {c: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v)) for c, v in zip(cols, row)}
                for row in cur.fetchall()
            ]
        except Exception as e:  # noqa: BLE001 - a dialect difference is reported, not hidden
            entry["not_run"] = f"{type(e).__name__}: {e}".splitlines()[0]


def main():
    template, problems = decode(sys.argv[1])
    if problems:
        print(json.dumps({"error": [str(p) for p in problems]}))
        return 1
    report = {"queries": {}}
    ok, table, queries = check_queries(template, report)
    if ok and len(sys.argv) > 2:
        run_queries(table, queries, sys.argv[2], report)
    print(json.dumps(report, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
