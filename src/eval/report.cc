#include "eval/report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace kg::eval {
namespace {

using nlohmann::json;

std::string Ratio(const std::optional<double>& v) { return v ? fmt::format("{:.3f}", *v) : "-"; }

json RatioJson(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json CountsJson(const Counts& c) {
  return {{"tp", c.tp},
          {"predicted", c.predicted},
          {"gold", c.gold},
          {"precision", RatioJson(c.Precision())},
          {"recall", RatioJson(c.Recall())},
          {"f1", RatioJson(c.F1())}};
}

json ScoresJson(const Scores& s, int items) {
  return {{"items", items},
          {"entities_typed", CountsJson(s.entities_typed)},
          {"entities_untyped", CountsJson(s.entities_untyped)},
          {"relations_typed", CountsJson(s.relations_typed)},
          {"relations_untyped", CountsJson(s.relations_untyped)}};
}

void Rows(std::string& out, const std::string& scope, const Scores& s) {
  const std::pair<const char*, const Counts*> rows[] = {{"entities typed", &s.entities_typed},
                                                        {"entities untyped", &s.entities_untyped},
                                                        {"relations typed", &s.relations_typed},
                                                        {"relations untyped", &s.relations_untyped}};
  for (const auto& [what, c] : rows) {
    out += fmt::format("{:<8} {:<18} {:>6} {:>6} {:>6}   {}/{}/{}\n", scope, what, Ratio(c->Precision()),
                       Ratio(c->Recall()), Ratio(c->F1()), c->tp, c->predicted, c->gold);
  }
}

}  // namespace

std::string FormatTable(const ReportHeader& h, const Report& r, size_t max_misses) {
  std::string langs;
  for (const auto& [lang, n] : r.items_by_lang) langs += fmt::format("{}{} {}", langs.empty() ? "" : ", ", lang, n);
  std::string out = fmt::format("kgflow eval {}: {} items ({}), provider {}\n\n", h.file, r.items.size(), langs,
                                h.provider);
  out += fmt::format("{:<8} {:<18} {:>6} {:>6} {:>6}   {}\n", "scope", "measure", "P", "R", "F1", "tp/predicted/gold");
  for (const auto& [lang, s] : r.by_lang) Rows(out, lang, s);
  Rows(out, "overall", r.overall);

  size_t total = 0;
  for (const auto& i : r.items) total += i.misses.size();
  if (total == 0) return out + "\nNo misses.\n";
  out += fmt::format("\nMisses ({} in all{}):\n", total,
                     total > max_misses ? fmt::format("; the first {} shown, --max-misses N for more, --json for all",
                                                      max_misses)
                                        : "");
  size_t printed = 0;
  for (const auto& i : r.items) {
    if (printed >= max_misses) break;
    if (i.misses.size() == 0) continue;
    out += fmt::format("{} (line {}, {}):\n", i.id, i.line, i.lang);
    const std::pair<const char*, const std::vector<std::string>*> kinds[] = {
        {"missed entity", &i.misses.missed_entities},
        {"spurious entity", &i.misses.spurious_entities},
        {"missed relation", &i.misses.missed_relations},
        {"spurious relation", &i.misses.spurious_relations}};
    for (const auto& [kind, lines] : kinds) {
      for (const auto& l : *lines) {
        if (printed++ >= max_misses) break;
        out += fmt::format("  {:<18} {}\n", kind, l);
      }
    }
  }
  return out;
}

std::string FormatJson(const ReportHeader& h, const Report& r) {
  json langs = json::object();
  for (const auto& [lang, s] : r.by_lang) langs[lang] = ScoresJson(s, r.items_by_lang.at(lang));
  json items = json::array();
  for (const auto& i : r.items) {
    items.push_back({{"id", i.id},
                     {"line", i.line},
                     {"lang", i.lang},
                     {"scores", ScoresJson(i.scores, 1)},
                     {"missed_entities", i.misses.missed_entities},
                     {"spurious_entities", i.misses.spurious_entities},
                     {"missed_relations", i.misses.missed_relations},
                     {"spurious_relations", i.misses.spurious_relations}});
  }
  json j = {{"file", h.file},
            {"provider", h.provider},
            {"overall", ScoresJson(r.overall, static_cast<int>(r.items.size()))},
            {"languages", langs},
            {"items", items}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace kg::eval
