"""Checks the demo's JSON report against what each migration must show.

safe:  at least 20,000 requests compared, zero discrepancies of any kind, PASS.
risky: exactly shadow_error (SQLSTATE 22001 only) on the e-mail inserts,
       exactly value_mismatch (naming only price) on the product reads that
       return price, exactly latency_regression (a sequential scan of orders)
       on orders-by-customer, FAIL, and nothing on any other fingerprint.
"""
import json
import sys

migration, report_path, verdict_status, published = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
report = json.load(open(report_path))
failures = []


def check(condition, what):
    print(("ok: " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)


# The fingerprints risky.sql touches, each with the one set of kinds it must
# show: another kind there (a 22001 insert decided shadow_missing, a price read
# that also regressed) is a wrong finding, not an extra one.
RISKY_TOUCHES = [
    ("customer inserts", lambda sql: sql.startswith("insert into customers"), {"shadow_error"}),
    ("product reads returning price", lambda sql: "from products" in sql and "price" in sql, {"value_mismatch"}),
    ("orders by customer", lambda sql: "from orders where customer_id" in sql, {"latency_regression"}),
]


def touched_by_risky(sql):
    """The name of the touch a fingerprint's SQL is, or None."""
    lowered = sql.lower()
    return next((name for name, matches, _ in RISKY_TOUCHES if matches(lowered)), None)


check(published > 0, f"the load generator published requests: {published}")
check(report["compared"] >= 20000 and report["compared"] >= published,
      f"at least 20,000 requests compared, all that were published: {report['compared']} of {published}")
check(report["unreadable_records"] == 0, "every mismatch and summary record decodes")

if migration == "safe":
    check(report["discrepancies"] == 0 and not report["discrepancies_by_kind"],
          f"no discrepancy of any kind: {report['discrepancies_by_kind']}")
    regressions = [f["fingerprint"] for f in report["fingerprints"] if f["latency_regression"]]
    check(not regressions, f"no latency regression: {regressions}")
    check(verdict_status == 0, f"verdict PASS (exit {verdict_status})")
else:
    fingerprints = report["fingerprints"]
    for name, _, kinds in RISKY_TOUCHES:
        touched = [f for f in fingerprints if touched_by_risky(f["sql"]) == name]
        check(touched, f"the report has {name}")
        for f in touched:
            check(set(f["discrepancies"]) == kinds,
                  f"{name}: exactly {sorted(kinds)} on {f['sql'][:60]!r}: {f['discrepancies']}")
    inserts = [f for f in fingerprints if f["sql"].lower().startswith("insert into customers")]
    check(inserts and all(f["sqlstates"] == ["22001"] for f in inserts),
          "the customer inserts fail with SQLSTATE 22001 only: " + str([f["sqlstates"] for f in inserts]))
    price_reads = [f for f in fingerprints if f["discrepancies"].get("value_mismatch")]
    check(price_reads and all(f["columns_differ"] == ["price"] for f in price_reads),
          "value_mismatch naming only the price column on product reads: "
          + str([(f["sql"][:60], f["columns_differ"]) for f in price_reads]))
    orders = [f for f in fingerprints if "from orders where customer_id" in f["sql"].lower()]
    regression = orders[0]["latency_regression"] if orders else None
    check(regression is not None, "latency_regression on orders-by-customer")
    if regression:
        plan = regression["plan"] or {}
        check("orders" in plan.get("seq_scans", []), f"its shadow plan scans orders sequentially: {plan}")
        check(regression["ratio"] > 3, f"ratio {regression['ratio']:.1f} > 3")
    stray = [(f["sql"][:70], f["discrepancies"]) for f in fingerprints
             if f["discrepancies"] and not touched_by_risky(f["sql"])]
    check(not stray, f"no discrepancy on fingerprints the migration does not touch: {stray}")
    check(verdict_status == 1, f"verdict FAIL (exit {verdict_status})")

print(f"e2e {migration}: {len(failures)} failed")
sys.exit(1 if failures else 0)
