"""Checks the demo's JSON report against what each migration must show.

safe:  at least 20,000 requests compared, zero discrepancies of any kind, PASS.
risky: shadow_error 22001 on the e-mail inserts, value_mismatch naming price
       on product reads, latency_regression with a sequential scan of orders
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


def touched_by_risky(sql):
    lowered = sql.lower()
    writes_email = lowered.startswith("insert into customers")
    reads_price = "from products" in lowered and "price" in lowered
    orders_by_customer = "from orders where customer_id" in lowered
    return writes_email or reads_price or orders_by_customer


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
    by_sql = {f["fingerprint"]: f for f in report["fingerprints"]}
    inserts = [f for f in by_sql.values() if f["sql"].lower().startswith("insert into customers")]
    check(any(f["discrepancies"].get("shadow_error") and "22001" in f["sqlstates"] for f in inserts),
          "shadow_error with SQLSTATE 22001 on the customer inserts")
    price_reads = [f for f in by_sql.values() if "from products" in f["sql"].lower()
                   and f["discrepancies"].get("value_mismatch")]
    check(price_reads and all(f["columns_differ"] == ["price"] for f in price_reads),
          "value_mismatch naming only the price column on product reads: "
          + str([(f["sql"][:60], f["columns_differ"]) for f in price_reads]))
    orders = [f for f in by_sql.values() if "from orders where customer_id" in f["sql"].lower()]
    regression = orders[0]["latency_regression"] if orders else None
    check(regression is not None, "latency_regression on orders-by-customer")
    if regression:
        plan = regression["plan"] or {}
        check("orders" in plan.get("seq_scans", []), f"its shadow plan scans orders sequentially: {plan}")
        check(regression["ratio"] > 3, f"ratio {regression['ratio']:.1f} > 3")
    stray = [(f["sql"][:70], f["discrepancies"]) for f in report["fingerprints"]
             if f["discrepancies"] and not touched_by_risky(f["sql"])]
    check(not stray, f"no discrepancy on fingerprints the migration does not touch: {stray}")
    check(verdict_status == 1, f"verdict FAIL (exit {verdict_status})")

print(f"e2e {migration}: {len(failures)} failed")
sys.exit(1 if failures else 0)
