#include "api/submission.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

namespace kg::api {
namespace {

using nlohmann::json;

struct Field {
  const char* name;
  std::string Submission::*member;
  size_t max_len;
};
constexpr Field kFields[] = {{"title", &Submission::title, 1000},
                             {"provider", &Submission::provider, 200},
                             {"source", &Submission::source, 2000},
                             {"id", &Submission::id, 200},
                             {"format", &Submission::format, 20}};

// The media type without parameters, lower-cased: "text/plain; charset=utf-8" -> "text/plain".
std::string MediaType(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  t.erase(std::remove_if(t.begin(), t.end(), [](unsigned char c) { return std::isspace(c); }), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

// The format a media type implies; "" for one that implies none.
std::string FormatOf(const std::string& media) {
  if (media == "text/markdown" || media == "text/x-markdown") return "markdown";
  if (media == "text/html" || media == "application/xhtml+xml") return "html";
  if (media == "text/plain") return "text";
  return "";
}

Status SetField(Submission* s, const Field& f, const std::string& value) {
  if (value.size() > f.max_len) {
    return Status::Invalid(std::string("'") + f.name + "' is longer than " + std::to_string(f.max_len));
  }
  s->*f.member = value;
  return Status::Ok();
}

constexpr const char* kBudgetRule = "'token_budget' must be a whole number from 0 to 9223372036854775807";

// "token_budget" given as text (a query parameter or a form part): decimal digits only.
Status SetTokenBudget(Submission* s, const std::string& value) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || value[0] == '-' || value[0] == '+' || ec != std::errc() || end != value.data() + value.size()) {
    return Status::Invalid(kBudgetRule);
  }
  s->token_budget = n;
  return Status::Ok();
}

// "token_budget" of a JSON submission: an integer (1.0, "5" and -1 are refused).
Status SetTokenBudget(Submission* s, const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    s->token_budget = static_cast<int64_t>(v.get<uint64_t>());
    return Status::Ok();
  }
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= 0) {
    s->token_budget = v.get<int64_t>();
    return Status::Ok();
  }
  return Status::Invalid(kBudgetRule);
}

// The fields given as query parameters (the non-JSON shapes).
Status FieldsFromQuery(const http::Request& req, Submission* s) {
  for (const auto& f : kFields) {
    if (req.has_param(f.name)) KG_RETURN_IF_ERROR(SetField(s, f, req.get_param_value(f.name)));
  }
  if (req.has_param("token_budget")) KG_RETURN_IF_ERROR(SetTokenBudget(s, req.get_param_value("token_budget")));
  return Status::Ok();
}

Status CheckFormat(Submission* s, const std::string& implied) {
  if (s->format.empty()) s->format = implied;
  if (!s->format.empty() && s->format != "text" && s->format != "markdown" && s->format != "html") {
    return Status::Invalid("'format' must be text, markdown or html, not '" + s->format + "'");
  }
  return Status::Ok();
}

// A body that is a JSON object, parsed; discarded (is_discarded()) for any other body. The
// braces are checked first so a large plain document is not run through the JSON parser.
json JsonObject(const std::string& body) {
  auto first = body.find_first_not_of(" \t\r\n");
  auto last = body.find_last_not_of(" \t\r\n");
  if (first == std::string::npos || body[first] != '{' || body[last] != '}') return json(json::value_t::discarded);
  json j = json::parse(body, nullptr, false);
  return j.is_object() ? j : json(json::value_t::discarded);
}

// The submission a parsed JSON object describes; `j` is consumed (its text is moved out).
Result<Submission> FromJsonObject(json& j) {
  if (!j.contains("text")) return Status::Invalid("missing 'text'");
  if (!j["text"].is_string()) return Status::Invalid("'text' must be a string");
  Submission s;
  s.owned = std::make_unique<std::string>(std::move(j["text"].get_ref<std::string&>()));
  s.text = *s.owned;
  for (const auto& f : kFields) {
    if (!j.contains(f.name) || j[f.name].is_null()) continue;
    if (!j[f.name].is_string()) return Status::Invalid(std::string("'") + f.name + "' must be a string");
    KG_RETURN_IF_ERROR(SetField(&s, f, j[f.name].get<std::string>()));
  }
  if (j.contains("token_budget") && !j["token_budget"].is_null()) {
    KG_RETURN_IF_ERROR(SetTokenBudget(&s, j["token_budget"]));
  }
  KG_RETURN_IF_ERROR(CheckFormat(&s, ""));
  return s;
}

Result<Submission> FromJson(const http::Request& req) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return Status::Invalid("request body is not valid JSON");
  if (!j.is_object()) return Status::Invalid("request body must be a JSON object");
  return FromJsonObject(j);
}

// One document of a batch from its parsed JSON; the message names `where`.
Result<Submission> BatchItem(json& j, const std::string& where) {
  if (!j.is_object()) return Status::Invalid(where + ": a document must be a JSON object with \"text\"");
  auto s = FromJsonObject(j);
  if (!s.ok()) return s.status().With(where);
  return s;
}

// The lines of an NDJSON body that are not blank, with their line numbers (from 1).
std::vector<std::pair<size_t, std::string_view>> NdjsonLines(std::string_view body) {
  std::vector<std::pair<size_t, std::string_view>> out;
  size_t line = 0;
  for (size_t pos = 0; pos < body.size();) {
    size_t nl = body.find('\n', pos);
    size_t end = nl == std::string_view::npos ? body.size() : nl;
    ++line;
    std::string_view l = body.substr(pos, end - pos);
    if (l.find_first_not_of(" \t\r") != std::string_view::npos) out.emplace_back(line, l);
    pos = end + 1;
  }
  return out;
}

Result<Submission> FromMultipart(const http::Request& req) {
  Submission s;
  KG_RETURN_IF_ERROR(FieldsFromQuery(req, &s));
  auto file = req.files.find("file");
  if (file == req.files.end()) return Status::Invalid("multipart upload has no 'file' part");
  for (const auto& f : kFields) {
    auto part = req.files.find(f.name);
    if (part != req.files.end()) KG_RETURN_IF_ERROR(SetField(&s, f, part->second.content));
  }
  if (auto part = req.files.find("token_budget"); part != req.files.end()) {
    KG_RETURN_IF_ERROR(SetTokenBudget(&s, part->second.content));
  }
  s.text = file->second.content;  // a view: req outlives the submission
  if (s.title.empty() && !file->second.filename.empty()) s.title = file->second.filename.substr(0, 1000);
  std::string media = MediaType(file->second.content_type);
  std::string implied = FormatOf(media);
  if (implied.empty()) {
    // A browser labels a file by its extension; take the format from it as the CLI does.
    const std::string& name = file->second.filename;
    auto dot = name.find_last_of('.');
    std::string ext = dot == std::string::npos ? "" : name.substr(dot + 1);
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    implied = ext == "md" || ext == "markdown" ? "markdown" : ext == "html" || ext == "htm" ? "html" : "";
  }
  KG_RETURN_IF_ERROR(CheckFormat(&s, implied));
  return s;
}

}  // namespace

Result<Submission> ParseQueryFields(const http::Request& head) {
  Submission s;
  KG_RETURN_IF_ERROR(FieldsFromQuery(head, &s));
  KG_RETURN_IF_ERROR(CheckFormat(&s, FormatOf(MediaType(head.get_header_value("Content-Type")))));
  return s;
}

Result<Batch> ParseBatch(const http::Request& req, size_t max_documents) {
  const std::string media = MediaType(req.get_header_value("Content-Type"));
  if (media != "application/x-ndjson" && media != "application/json") {
    return Status::Invalid((media.empty() ? std::string("a batch needs a Content-Type")
                                          : "unsupported Content-Type '" + media + "' for a batch") +
                           "; send application/x-ndjson (one JSON document per line) or "
                           "application/json (an array of documents)");
  }
  Batch batch;
  if (media == "application/x-ndjson") {
    auto lines = NdjsonLines(req.body);
    batch.count = lines.size();
    if (batch.count == 0) return Status::Invalid("the batch holds no document (every line is blank)");
    if (batch.count > max_documents) return batch;
    batch.documents.reserve(lines.size());
    for (const auto& [number, text] : lines) {
      std::string where = "line " + std::to_string(number);
      json j = json::parse(text, nullptr, false);
      if (j.is_discarded()) return Status::Invalid(where + ": not valid JSON");
      KG_ASSIGN_OR_RETURN(Submission s, BatchItem(j, where));
      batch.documents.push_back({std::move(where), std::move(s)});
    }
    return batch;
  }
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return Status::Invalid("request body is not valid JSON");
  if (!j.is_array()) return Status::Invalid("a batch sent as application/json must be an array of documents");
  batch.count = j.size();
  if (batch.count == 0) return Status::Invalid("the batch holds no document (an empty array)");
  if (batch.count > max_documents) return batch;
  batch.documents.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    std::string where = "document " + std::to_string(i + 1);
    KG_ASSIGN_OR_RETURN(Submission s, BatchItem(j[i], where));
    batch.documents.push_back({std::move(where), std::move(s)});
  }
  return batch;
}

bool IsPlainTextUpload(const http::Request& head) {
  if (head.is_multipart_form_data() || MediaType(head.get_header_value("Content-Type")) != "text/plain") return false;
  return !head.has_param("format") || head.get_param_value("format") == "text";
}

Result<Submission> ParseSubmission(const http::Request& req) {
  std::string media = MediaType(req.get_header_value("Content-Type"));
  if (req.is_multipart_form_data()) return FromMultipart(req);
  if (media.empty() || media == "application/json") {
    if (req.body.empty()) return Status::Invalid("request body is empty; expected a JSON object");
    return FromJson(req);
  }
  // `curl -d '{...}'` labels JSON as a form; such clients worked before the text/plain
  // shape existed. A form body that is a JSON object is read as JSON.
  if (media == "application/x-www-form-urlencoded" && !JsonObject(req.body).is_discarded()) return FromJson(req);
  std::string implied = FormatOf(media);
  // A JSON submission sent as text/plain would be stored as the document, braces and all.
  if (implied == "text" && !req.has_param("format")) {
    json j = JsonObject(req.body);
    if (!j.is_discarded() && j.contains("text") && j["text"].is_string()) {
      return Status::Invalid(
          "the text/plain body is a JSON submission ({\"text\": ...}); send it with Content-Type: application/json, or add ?format=text to store this body as written");
    }
  }
  if (implied.empty()) {
    std::string hint = media == "application/x-www-form-urlencoded"
                           ? " (curl -d sends a form: for a plain document use --data-binary @FILE -H 'Content-Type: text/plain')"
                           : "";
    return Status::Invalid("unsupported Content-Type '" + media +
                           "'; send application/json, text/plain, text/markdown, text/html or multipart/form-data" +
                           hint);
  }
  Submission s;
  KG_RETURN_IF_ERROR(FieldsFromQuery(req, &s));
  s.text = req.body;  // a view: req outlives the submission
  KG_RETURN_IF_ERROR(CheckFormat(&s, implied));
  return s;
}

}  // namespace kg::api
