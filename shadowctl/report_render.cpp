// Rendering of a Report: a terminal table, one JSON document, or one
// self-contained HTML file (inline CSS and SVG, no scripts, no fetches).
#include "shadowctl/report.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace shadowpipe::shadowctl {

namespace wire = shadowpipe::wire;

namespace {

std::string milliseconds(double us) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, us >= 100'000 ? "%.0f" : "%.2f", us / 1000.0);
  return buffer;
}

std::string percentiles(const wire::LatencySummary& latency) {
  if (latency.count == 0) return "-";
  return milliseconds(latency.p50_us) + " / " + milliseconds(latency.p95_us) + " / " + milliseconds(latency.p99_us);
}

std::string utc(int64_t ts_us) {
  if (ts_us <= 0) return "-";
  const std::time_t seconds = ts_us / 1'000'000;
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%SZ", &parts);
  return buffer;
}

std::string join(const auto& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string kinds(const FingerprintReport& fingerprint) {
  std::vector<std::string> parts;
  for (const auto& [kind, count] : fingerprint.discrepancies) parts.push_back(kind + " " + std::to_string(count));
  return parts.empty() ? "none" : join(parts, ", ");
}

std::string plan_line(const wire::PlanSummary& plan) {
  std::string line = join(plan.node_types, " > ");
  if (!plan.seq_scans.empty()) line += "; sequential scan on " + join(plan.seq_scans, ", ");
  char cost[48];
  std::snprintf(cost, sizeof cost, "; estimated cost %.2f", plan.total_cost);
  return line + cost;
}

std::string one_line(std::string sql, size_t width) {
  std::replace(sql.begin(), sql.end(), '\n', ' ');
  if (sql.size() > width) sql = sql.substr(0, width - 3) + "...";
  return sql;
}

// The stretches the shadow never applied, then the requests never compared:
// every gap, but only the first twenty of the latter (results lost to
// retention leave a record a request; the JSON lists every one).
std::vector<std::string> gap_lines(const Report& report) {
  constexpr size_t kNotComparedShown = 20;
  std::vector<std::string> lines;
  for (const auto& gap : report.gaps) lines.push_back("GAP: " + gap.detail);
  if (!report.comparison_gaps.empty()) {
    lines.push_back("NOT COMPARED: " + std::to_string(report.requests_never_compared()) + " requests in all");
  }
  for (size_t i = 0; i < std::min(report.comparison_gaps.size(), kNotComparedShown); ++i) {
    lines.push_back("NOT COMPARED: " + report.comparison_gaps[i].detail);
  }
  if (report.comparison_gaps.size() > kNotComparedShown) {
    lines.push_back("NOT COMPARED: ... and " + std::to_string(report.comparison_gaps.size() - kNotComparedShown) +
                    " more (--format json lists every one)");
  }
  return lines;
}

std::string render_text(const Report& report) {
  std::ostringstream out;
  size_t regressions = 0;
  for (const auto& fingerprint : report.fingerprints) regressions += fingerprint.latency_regression.has_value();
  out << "shadowpipe report: " << report.compared << " requests compared, " << report.discrepancies(false)
      << " discrepancies, " << regressions << " latency regressions, " << report.fingerprints.size()
      << " fingerprints\n";
  out << "decisions from " << utc(report.first_ts_us) << " to " << utc(report.last_ts_us);
  if (report.duplicate_mismatch_records) out << " (" << report.duplicate_mismatch_records << " repeated records ignored)";
  if (report.unreadable_records) out << " (" << report.unreadable_records << " unreadable records)";
  out << "\n";
  for (const auto& line : gap_lines(report)) out << one_line(line, 174) << "\n";
  for (const auto& partition : report.partitions) {
    if (partition.undecided() == 0) continue;
    out << "partition " << partition.partition << ": " << partition.undecided() << " requests not decided yet";
    if (partition.stall) out << ", stalled since " << utc(partition.stall->since_us) << " (no shadow results)";
    out << "\n";
  }
  out << "\n";
  char header[256];
  std::snprintf(header, sizeof header, "%-18s %10s  %-44s %-24s %-24s\n", "FINGERPRINT", "STATEMENTS", "DISCREPANCIES",
                "PRIMARY ms p50/p95/p99", "SHADOW ms p50/p95/p99");
  out << header;
  for (const auto& fingerprint : report.fingerprints) {
    char row[512];
    std::snprintf(row, sizeof row, "%-18s %10llu  %-44s %-24s %-24s\n", fingerprint.fingerprint.c_str(),
                  static_cast<unsigned long long>(fingerprint.compared), kinds(fingerprint).c_str(),
                  percentiles(fingerprint.primary_latency).c_str(), percentiles(fingerprint.shadow_latency).c_str());
    out << row;
    out << "    sql: " << one_line(fingerprint.normalized_sql, 110) << "\n";
    if (fingerprint.nondeterministic()) out << "    NON-DETERMINISTIC: only row counts compared\n";
    for (const auto& [kind, details] : fingerprint.notices) {
      for (const auto& detail : details) out << "    notice " << kind << ": " << one_line(detail, 110) << "\n";
    }
    if (!fingerprint.columns_differ.empty()) out << "    columns that differ: " << join(fingerprint.columns_differ, ", ") << "\n";
    if (!fingerprint.sqlstates.empty()) out << "    SQLSTATE: " << join(fingerprint.sqlstates, ", ") << "\n";
    for (const auto& message : fingerprint.error_messages) out << "    error: " << one_line(message, 110) << "\n";
    if (!fingerprint.example_request_ids.empty()) {
      out << "    example requests: " << join(fingerprint.example_request_ids, ", ") << "\n";
    }
    if (fingerprint.latency_regression) {
      const auto& regression = *fingerprint.latency_regression;
      char ratio[64];
      std::snprintf(ratio, sizeof ratio, "%.1fx", regression.latency_ratio);
      out << "    latency regression: shadow p95 is " << ratio << " the primary's";
      if (!regression.detail.empty()) out << " (" << regression.detail << ")";
      out << "\n";
      if (regression.plan) out << "    shadow plan: " << plan_line(*regression.plan) << "\n";
    }
  }
  return out.str();
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(JsonWriter& json, const std::string& text) {
  json.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

void write_latency(JsonWriter& json, const wire::LatencySummary& latency) {
  json.StartObject();
  json.Key("count"); json.Uint64(latency.count);
  json.Key("p50_us"); json.Double(latency.p50_us);
  json.Key("p95_us"); json.Double(latency.p95_us);
  json.Key("p99_us"); json.Double(latency.p99_us);
  json.Key("max_us"); json.Double(latency.max_us);
  json.EndObject();
}

void write_strings(JsonWriter& json, const auto& items) {
  json.StartArray();
  for (const auto& item : items) write_string(json, item);
  json.EndArray();
}

std::string render_json(const Report& report) {
  rapidjson::StringBuffer buffer;
  JsonWriter json(buffer);
  json.StartObject();
  json.Key("compared"); json.Uint64(report.compared);
  json.Key("discrepancies"); json.Uint64(report.discrepancies(false));
  std::map<std::string, uint64_t> by_kind;
  for (const auto& fingerprint : report.fingerprints) {
    for (const auto& [kind, count] : fingerprint.discrepancies) by_kind[kind] += count;
  }
  json.Key("discrepancies_by_kind");
  // Gap records are listed apart below; counted here as records, as before.
  if (!report.gaps.empty()) by_kind["shadow_gap"] += report.gaps.size();
  if (!report.comparison_gaps.empty()) by_kind["comparison_gap"] += report.comparison_gaps.size();
  json.StartObject();
  for (const auto& [kind, count] : by_kind) { write_string(json, kind); json.Uint64(count); }
  json.EndObject();
  json.Key("requests_never_compared"); json.Uint64(report.requests_never_compared());
  json.Key("mismatch_records"); json.Uint64(report.mismatch_records);
  json.Key("duplicate_mismatch_records"); json.Uint64(report.duplicate_mismatch_records);
  json.Key("unreadable_records"); json.Uint64(report.unreadable_records);
  json.Key("first_ts"); json.Int64(report.first_ts_us);
  json.Key("last_ts"); json.Int64(report.last_ts_us);
  // Stretches the shadow never applied (units: write units), and requests
  // never compared (units: requests), every one.
  for (const auto* list : {&report.gaps, &report.comparison_gaps}) {
    json.Key(list == &report.gaps ? "gaps" : "comparison_gaps");
    json.StartArray();
    for (const auto& gap : *list) {
      json.StartObject();
      json.Key("id"); write_string(json, gap.id);
      json.Key("units"); json.Uint64(gap.write_units);
      json.Key("detail"); write_string(json, gap.detail);
      json.EndObject();
    }
    json.EndArray();
  }
  json.Key("fingerprints");
  json.StartArray();
  for (const auto& fingerprint : report.fingerprints) {
    json.StartObject();
    json.Key("fingerprint"); write_string(json, fingerprint.fingerprint);
    json.Key("sql"); write_string(json, fingerprint.normalized_sql);
    json.Key("compared"); json.Uint64(fingerprint.compared);
    json.Key("discrepancies");
    json.StartObject();
    for (const auto& [kind, count] : fingerprint.discrepancies) { write_string(json, kind); json.Uint64(count); }
    json.EndObject();
    json.Key("nondeterministic"); json.Bool(fingerprint.nondeterministic());
    json.Key("notices");
    json.StartObject();
    for (const auto& [kind, details] : fingerprint.notices) { write_string(json, kind); write_strings(json, details); }
    json.EndObject();
    json.Key("example_request_ids"); write_strings(json, fingerprint.example_request_ids);
    json.Key("columns_differ"); write_strings(json, fingerprint.columns_differ);
    json.Key("sqlstates"); write_strings(json, fingerprint.sqlstates);
    json.Key("error_messages"); write_strings(json, fingerprint.error_messages);
    json.Key("latency");
    json.StartObject();
    json.Key("primary"); write_latency(json, fingerprint.primary_latency);
    json.Key("shadow"); write_latency(json, fingerprint.shadow_latency);
    json.EndObject();
    json.Key("latency_regression");
    if (fingerprint.latency_regression) {
      const auto& regression = *fingerprint.latency_regression;
      json.StartObject();
      json.Key("ratio"); json.Double(regression.latency_ratio);
      json.Key("request_id"); write_string(json, regression.request_id);
      json.Key("detail"); write_string(json, regression.detail);
      json.Key("plan");
      if (regression.plan) {
        json.StartObject();
        json.Key("node_types"); write_strings(json, regression.plan->node_types);
        json.Key("seq_scans"); write_strings(json, regression.plan->seq_scans);
        json.Key("total_cost"); json.Double(regression.plan->total_cost);
        json.Key("plan_rows"); json.Double(regression.plan->plan_rows);
        json.EndObject();
      } else {
        json.Null();
      }
      json.EndObject();
    } else {
      json.Null();
    }
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// Horizontal bars: p50, p95, p99 of primary and shadow on one scale.
std::string latency_chart(const FingerprintReport& fingerprint) {
  const auto& p = fingerprint.primary_latency;
  const auto& s = fingerprint.shadow_latency;
  const double top = std::max({p.p99_us, s.p99_us, 1.0});
  std::ostringstream svg;
  svg << "<svg class=\"chart\" viewBox=\"0 0 420 130\" role=\"img\" aria-label=\"latency primary vs shadow\">";
  const char* labels[] = {"p50", "p95", "p99"};
  const double primary[] = {p.p50_us, p.p95_us, p.p99_us};
  const double shadow[] = {s.p50_us, s.p95_us, s.p99_us};
  for (int i = 0; i < 3; ++i) {
    const int y = 8 + i * 40;
    const double wp = 300.0 * primary[i] / top, ws = 300.0 * shadow[i] / top;
    svg << "<text x=\"0\" y=\"" << y + 14 << "\">" << labels[i] << "</text>"
        << "<rect class=\"primary\" x=\"40\" y=\"" << y << "\" width=\"" << wp << "\" height=\"14\"/>"
        << "<text x=\"" << 44 + wp << "\" y=\"" << y + 12 << "\">" << milliseconds(primary[i]) << " ms</text>"
        << "<rect class=\"shadow\" x=\"40\" y=\"" << y + 16 << "\" width=\"" << ws << "\" height=\"14\"/>"
        << "<text x=\"" << 44 + ws << "\" y=\"" << y + 28 << "\">" << milliseconds(shadow[i]) << " ms</text>";
  }
  svg << "</svg>";
  return svg.str();
}

std::string render_html(const Report& report) {
  std::ostringstream html;
  html << "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>shadowpipe report</title><style>"
          "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}"
          "th,td{border-bottom:1px solid #ddd;padding:6px;text-align:left;vertical-align:top}"
          "code{font-size:12px;white-space:pre-wrap}.bad{color:#b00020;font-weight:600}.ok{color:#2e7d32}"
          ".chart{width:420px;height:130px}.chart text{font-size:11px}.primary{fill:#1f77b4}.shadow{fill:#ff7f0e}"
          ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}"
          "</style></head><body>";
  html << "<h1>shadowpipe report</h1><p>" << report.compared << " requests compared, <span class=\""
       << (report.discrepancies(true) ? "bad" : "ok") << "\">" << report.discrepancies(false)
       << " discrepancies</span>, decisions from " << utc(report.first_ts_us) << " to " << utc(report.last_ts_us)
       << ".</p>";
  for (const auto& line : gap_lines(report)) html << "<p class=\"bad\">" << html_escape(line) << "</p>";
  html << "<p class=\"legend\"><span class=\"primary\" style=\"background:#1f77b4\"></span>primary"
          "<span style=\"background:#ff7f0e\"></span>shadow</p>";
  html << "<table><thead><tr><th>fingerprint / SQL</th><th>statements compared</th><th>discrepancies</th><th>evidence</th>"
          "<th>latency (ms)</th></tr></thead><tbody>";
  for (const auto& fingerprint : report.fingerprints) {
    html << "<tr><td><b>" << html_escape(fingerprint.fingerprint) << "</b><br><code>"
         << html_escape(fingerprint.normalized_sql) << "</code></td><td>" << fingerprint.compared << "</td><td class=\""
         << (fingerprint.discrepancies.empty() ? "ok" : "bad") << "\">" << html_escape(kinds(fingerprint)) << "</td><td>";
    if (fingerprint.nondeterministic()) html << "<b>non-deterministic</b>: only row counts compared<br>";
    for (const auto& [kind, details] : fingerprint.notices) {
      for (const auto& detail : details) html << "notice " << html_escape(kind) << ": " << html_escape(detail) << "<br>";
    }
    if (!fingerprint.columns_differ.empty()) html << "columns: " << html_escape(join(fingerprint.columns_differ, ", ")) << "<br>";
    if (!fingerprint.sqlstates.empty()) html << "SQLSTATE: " << html_escape(join(fingerprint.sqlstates, ", ")) << "<br>";
    for (const auto& message : fingerprint.error_messages) html << "error: " << html_escape(message) << "<br>";
    if (!fingerprint.example_request_ids.empty()) {
      html << "examples: " << html_escape(join(fingerprint.example_request_ids, ", ")) << "<br>";
    }
    if (fingerprint.latency_regression) {
      char ratio[64];
      std::snprintf(ratio, sizeof ratio, "%.1fx", fingerprint.latency_regression->latency_ratio);
      html << "<span class=\"bad\">latency regression " << ratio << "</span><br>";
      if (fingerprint.latency_regression->plan) {
        html << "shadow plan: " << html_escape(plan_line(*fingerprint.latency_regression->plan));
      }
    }
    html << "</td><td>" << latency_chart(fingerprint) << "</td></tr>";
  }
  html << "</tbody></table></body></html>\n";
  return html.str();
}

}  // namespace

std::string render(const Report& report, Format format) {
  switch (format) {
    case Format::text: return render_text(report);
    case Format::json: return render_json(report);
    case Format::html: return render_html(report);
  }
  return {};
}

}  // namespace shadowpipe::shadowctl
