// Rule-based extraction for English prose: capitalised name spans typed by suffixes,
// titles and context, relations from the words between two names in one sentence.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "text/text.h"
#include "provider/builtin_rules.h"

namespace kg::builtin {
namespace {

const std::set<std::string> kOrgSuffix = {
    "Inc", "Inc.", "Corp", "Corp.", "Corporation", "Ltd", "Ltd.", "LLC", "Labs", "Lab", "Laboratory",
    "Laboratories", "University", "Institute", "Group", "Company", "Foundation", "Bank", "Systems",
    "Technologies", "Industries", "Holdings", "Partners", "Capital", "Ventures", "Agency", "Council",
    "Association", "Society", "Press", "Robotics", "Energy", "Analytics", "Dynamics", "Media", "Studios",
    "Networks", "Pharmaceuticals", "Motors", "Airlines", "College", "School", "Hospital", "Museum",
    "Ministry", "Department", "Committee", "Fund", "Trust", "Club", "Software", "Semiconductors", "Bio",
    "Biotech", "Therapeutics", "Logistics", "Shipping", "Consortium", "Observatory", "Academy", "Co.", "AG",
    "GmbH", "Collective", "Cooperative", "Union", "Alliance", "Works", "Solutions", "Research"};
const std::set<std::string> kLocSuffix = {"City",   "River",  "Valley",  "Province", "County", "Bay",
                                          "Island", "Islands", "Mountains", "Republic", "Kingdom", "Street",
                                          "Harbor", "Harbour", "Coast", "Lake", "Region", "Port"};
const std::set<std::string> kTitles = {"Dr", "Dr.", "Mr", "Mr.", "Mrs", "Mrs.", "Ms", "Ms.", "Prof", "Prof.",
                                       "Professor", "Sir", "Dame"};
const std::set<std::string> kStopCaps = {
    "The", "A", "An", "In", "On", "At", "After", "Before", "During", "Since", "When", "While", "Its", "His",
    "Her", "Their", "This", "That", "These", "Those", "It", "He", "She", "They", "We", "Our", "Both", "Later",
    "Today", "Yesterday", "Last", "Next", "Each", "Every", "However", "Meanwhile", "Also", "And", "But", "Or",
    "By", "For", "From", "With", "Within", "Without", "Under", "Over", "As", "If", "Although", "Because",
    "Despite", "Among", "Between", "To", "Of", "I", "You", "Why", "How", "What", "Who", "Where", "There",
    "Then", "Now", "Once", "Some", "Many", "Most", "All", "Several", "Two", "Three", "One", "Four", "Five",
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January", "February",
    "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
    "According", "Under", "Together", "Unlike", "Like", "Following", "Shortly", "Within", "Founded",
    "Based", "Headquartered"};
const std::set<std::string> kConnectors = {"of", "for", "&", "de", "von", "van", "der", "du", "la"};
const std::set<std::string> kLocContext = {"in", "near", "from", "across", "throughout", "outside", "inside"};

struct Token {
  std::string text;
  size_t begin = 0, end = 0;
  bool word = false;
};

bool IsUpperStart(const std::string& w) {
  unsigned char c = static_cast<unsigned char>(w[0]);
  return std::isupper(c) != 0;
}

std::vector<Token> Tokenize(const std::string& s) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    size_t b = i;
    if (std::isalnum(c) || c >= 0x80) {
      while (i < s.size()) {
        unsigned char d = static_cast<unsigned char>(s[i]);
        bool inner = (d == '-' || d == '\'' || d == '.') && i + 1 < s.size() &&
                     std::isalnum(static_cast<unsigned char>(s[i + 1]));
        if (std::isalnum(d) || d >= 0x80 || inner) ++i;
        else break;
      }
      std::string w = s.substr(b, i - b);
      if (w.size() > 2 && (w.compare(w.size() - 2, 2, "'s") == 0)) {  // "Institute's" -> "Institute"
        w.resize(w.size() - 2);
        out.push_back({w, b, i - 2, true});
        out.push_back({"'s", i - 2, i, false});
        continue;
      }
      // "Inc." / "Dr." keep their period.
      if (i < s.size() && s[i] == '.' && (kTitles.count(w + ".") || kOrgSuffix.count(w + "."))) {
        ++i;
        w += ".";
      }
      out.push_back({w, b, i, true});
    } else {
      ++i;
      out.push_back({std::string(1, static_cast<char>(c)), b, i, false});
    }
  }
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Strength of the evidence behind a type: a suffix or title beats a relation hint,
// which beats context, which beats the default.
enum Strength { kDefault = 0, kContext = 1, kHint = 2, kExplicit = 3 };

struct Mention {
  std::string name;
  std::string type;
  Strength strength = kDefault;
  size_t first_tok = 0, last_tok = 0;  // token range in the sentence
};

struct Pattern {
  std::vector<std::string> words;
  const char* type;
  bool reversed;
  const char* src_hint;
  const char* dst_hint;
};

std::vector<std::string> Words(const char* s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = s; *p; ++p) {
    if (*p == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(*p);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

const std::vector<Pattern>& Patterns() {
  static const std::vector<Pattern> kPatterns = [] {
    std::vector<Pattern> p;
    auto add = [&](std::initializer_list<const char*> phrases, const char* type, bool rev, const char* s,
                   const char* d) {
      for (const char* ph : phrases) p.push_back({Words(ph), type, rev, s, d});
    };
    const char* P = "Person";
    const char* O = "Organization";
    const char* L = "Location";
    add({"founded", "co-founded", "cofounded", "established", "started", "launched", "set up"}, "FOUNDED", false,
        "", O);
    add({"was founded by", "were founded by", "was established by", "was started by", "was launched by",
         "was co-founded by", "founded by"},
        "FOUNDED", true, O, "");
    add({"acquired", "bought", "purchased", "took over", "has acquired", "agreed to acquire"}, "ACQUIRED", false, O,
        O);
    add({"was acquired by", "was bought by", "was purchased by", "acquired by"}, "ACQUIRED", true, O, O);
    add({"is headquartered in", "headquartered in", "is based in", "based in", "is located in", "located in",
         "has its headquarters in", "moved its headquarters to", "relocated to"},
        "LOCATED_IN", false, O, L);
    add({"was born in", "born in"}, "BORN_IN", false, P, L);
    add({"lives in", "moved to", "grew up in"}, "LIVES_IN", false, P, L);
    add({"opened an office in", "opened a factory in", "opened a lab in", "expanded to", "expanded into",
         "operates in", "built a plant in", "opened a branch in"},
        "OPERATES_IN", false, O, L);
    add({"partnered with", "signed an agreement with", "collaborates with", "collaborated with",
         "formed a partnership with", "teamed up with", "signed a partnership with", "works with",
         "entered a joint venture with"},
        "PARTNER_OF", false, "", "");
    add({"invested in", "funded", "financed", "backed", "led a funding round in"}, "INVESTED_IN", false, "", O);
    add({"was funded by", "is funded by", "is backed by", "was backed by", "was financed by"}, "INVESTED_IN", true,
        O, "");
    add({"is a subsidiary of", "is part of", "is a division of", "is a unit of", "became part of",
         "a subsidiary of", "a division of"},
        "PART_OF", false, O, O);
    add({"is owned by", "owned by"}, "OWNED_BY", false, "", "");
    add({"owns"}, "OWNED_BY", true, "", "");
    add({"supplies", "supplied", "sells to", "provides components to", "delivers to", "ships to"}, "SUPPLIES",
        false, O, O);
    add({"competes with", "rivals", "competed with"}, "COMPETES_WITH", false, O, O);
    add({"studied at", "graduated from", "earned a degree from", "earned her doctorate at",
         "earned his doctorate at", "trained at"},
        "STUDIED_AT", false, P, O);
    add({"works at", "works for", "worked at", "worked for", "joined", "is employed by", "was hired by",
         "was recruited by", "left"},
        "WORKS_AT", false, P, O);
    add({"married", "is married to", "was married to"}, "MARRIED_TO", false, P, P);
    add({"joined the board of", "sits on the board of", "is on the board of", "was elected to the board of"},
        "MEMBER_OF", false, P, O);
    add({"sued", "filed a lawsuit against"}, "SUED", false, "", "");
    add({"leads", "led", "heads", "headed", "runs", "ran", "manages", "managed", "directs", "directed"}, "LEADS",
        false, P, O);
    add({"mentored", "mentors", "trained"}, "MENTORED", false, P, P);
    add({"advises", "advised"}, "ADVISES", false, P, "");
    add({"licensed its technology to", "licenses its technology to", "licensed"}, "LICENSED_TO", false, O, O);
    add({"spun off", "spun out"}, "SPUN_OFF", false, O, O);
    add({"in"}, "LOCATED_IN", false, O, L);  // only between an organisation and a place (checked below)
    return p;
  }();
  return kPatterns;
}

// Roles, as lower-case word sequences. A leadership role is never part of a name, in any
// case ("CEO of Helix Dynamics" is a role and an organisation, not one organisation);
// the other roles only name relations, as they always did.
struct Role {
  std::vector<std::string> words;
  const char* type;
  bool leadership;
};
const std::vector<Role>& Roles() {
  struct Entry {
    const char* phrase;
    const char* type;
    bool leadership;
  };
  static const Entry kTable[] = {
      {"chief executive officer", "CEO_OF", true}, {"chief executive", "CEO_OF", true},
      {"chief scientist", "CHIEF_SCIENTIST_OF", true}, {"ceo", "CEO_OF", true}, {"cto", "CTO_OF", true},
      {"cfo", "CFO_OF", true}, {"coo", "COO_OF", true}, {"cio", "CIO_OF", true}, {"cmo", "CMO_OF", true},
      {"co-founder", "FOUNDER_OF", true}, {"cofounder", "FOUNDER_OF", true}, {"founder", "FOUNDER_OF", true},
      {"vice president", "VICE_PRESIDENT_OF", true}, {"president", "PRESIDENT_OF", true},
      {"chairwoman", "CHAIR_OF", true}, {"chairman", "CHAIR_OF", true}, {"chairperson", "CHAIR_OF", true},
      {"chair", "CHAIR_OF", true}, {"managing director", "DIRECTOR_OF", true},
      {"executive director", "DIRECTOR_OF", true}, {"director", "DIRECTOR_OF", true}, {"head", "HEAD_OF", true},
      {"professor", "WORKS_AT", false}, {"researcher", "WORKS_AT", false}, {"engineer", "WORKS_AT", false},
      {"scientist", "WORKS_AT", false}, {"analyst", "WORKS_AT", false}, {"employee", "WORKS_AT", false},
      {"member", "MEMBER_OF", false}, {"board member", "MEMBER_OF", false}, {"advisor", "ADVISES", false},
      {"adviser", "ADVISES", false}, {"mayor", "MAYOR_OF", false}, {"spokesperson", "WORKS_AT", false},
      {"manager", "WORKS_AT", false}, {"investor", "INVESTED_IN", false}};
  static const std::vector<Role> kRoles = [] {
    std::vector<Role> out;
    for (const Entry& e : kTable) out.push_back({Words(e.phrase), e.type, e.leadership});
    return out;
  }();
  return kRoles;
}

// The relation type of the role starting at `words[pos]` (lower-case), longest match, and
// its length in words in `*len`; empty if none. Besides the table, any "chief <one to
// three words> officer" is a leadership role named by its initials: "chief marketing
// officer" -> CMO_OF, "chief operating officer" -> COO_OF.
std::string RoleAt(const std::vector<std::string>& words, size_t pos, bool leadership_only, size_t* len) {
  static const std::set<std::string> kFirstWords = [] {
    std::set<std::string> out = {"chief"};
    for (const auto& r : Roles()) out.insert(r.words.front());
    return out;
  }();
  *len = 0;
  if (pos >= words.size() || !kFirstWords.count(words[pos])) return "";  // most words: no role
  if (words[pos] == "chief") {
    for (size_t n = 2; n <= 4 && pos + n < words.size(); ++n) {
      if (words[pos + n] != "officer") continue;
      bool plain = true;
      std::string initials = "C";
      for (size_t k = pos + 1; k < pos + n && plain; ++k) {
        plain = !words[k].empty() && std::all_of(words[k].begin(), words[k].end(), [](char c) {
          return std::islower(static_cast<unsigned char>(c)) != 0;
        });
        if (plain) initials += static_cast<char>(std::toupper(static_cast<unsigned char>(words[k][0])));
      }
      if (!plain) break;
      *len = n + 1;
      return initials + "O_OF";
    }
  }
  std::string best;
  size_t best_len = 0;
  for (const auto& r : Roles()) {
    if (leadership_only && !r.leadership) continue;
    if (r.words.size() <= best_len || pos + r.words.size() > words.size()) continue;
    if (std::equal(r.words.begin(), r.words.end(), words.begin() + static_cast<std::ptrdiff_t>(pos))) {
      best = r.type;
      best_len = r.words.size();
    }
  }
  *len = best_len;
  return best;
}

// Words that may come before a role: "(is|was|became|the|a|...)* <role> (of|at|for|to)".
const std::set<std::string> kRoleLead = {
    "is", "was", "the", "a", "an", "as", "became", "becomes", "serves", "served", "appointed", "named", "now",
    "also", "former", "longtime", "co", "senior", "lead", "chief", "who", "new", "interim", "acting", "first",
    "research", "software", "staff", "its", "their", "his", "her", "elected", "promoted", "to", "remains",
    "remained", "has", "been", "then", "currently", "still"};

// "(lead)* <role> (and (lead)* <role>)* (of|at|for|to)" covering the whole gap: "is the
// CEO of", "was appointed Chief Financial Officer of", "is the CEO and founder of".
std::vector<std::string> MatchRole(const std::vector<std::string>& gap) {
  if (gap.size() < 2) return {};
  const std::string& prep = gap.back();
  if (prep != "of" && prep != "at" && prep != "for" && prep != "to") return {};
  std::vector<std::string> types;
  const size_t end = gap.size() - 1;
  for (size_t off = 0; off < end;) {
    size_t len = 0;
    std::string type = RoleAt(gap, off, false, &len);
    if (type.empty()) {
      if (!kRoleLead.count(gap[off])) return {};
      ++off;
      continue;
    }
    types.push_back(type);
    off += len;
    if (off == end) return types;
    if (gap[off] != "and") return {};
    ++off;
  }
  return {};
}

// "(former|new|...)* <role>" covering the whole gap: "Helix Dynamics's CEO Mara Voss",
// "Quillon Capital CFO Ingrid Halvorsen".
std::string MatchPreposedRole(const std::vector<std::string>& gap) {
  static const std::set<std::string> kModifiers = {"former", "new", "interim", "acting", "longtime", "then",
                                                   "current", "founding"};
  for (size_t off = 0; off < gap.size(); ++off) {
    size_t len = 0;
    std::string type = RoleAt(gap, off, false, &len);
    if (!type.empty() && off + len == gap.size()) return type;
    if (!kModifiers.count(gap[off])) return "";
  }
  return "";
}

const std::set<std::string> kFiller = {"is", "was", "has", "have", "had", "been", "also", "later", "recently",
                                       "then", "who", "which", "that", "officially", "formally", "quietly",
                                       "jointly", "publicly", "first", "originally", "eventually", "soon", "now",
                                       "currently", "still", "since", "together", "subsequently", "once", "had",
                                       "in", "year", "early", "late", "last", "she", "he", "they", "it"};

bool IsNumber(const std::string& w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// Gap words (lower-case, punctuation dropped) end with `tail`, and what comes before is filler.
bool EndsWith(const std::vector<std::string>& gap, const std::vector<std::string>& tail) {
  if (tail.size() > gap.size()) return false;
  size_t off = gap.size() - tail.size();
  for (size_t i = 0; i < tail.size(); ++i) {
    if (gap[off + i] != tail[i]) return false;
  }
  for (size_t i = 0; i < off; ++i) {
    if (!kFiller.count(gap[i]) && !IsNumber(gap[i])) return false;
  }
  return true;
}

}  // namespace

void ExtractEnglishSentence(const std::string& sentence, bool heading, Collector& out) {
  std::vector<Token> toks = Tokenize(sentence);
  std::vector<std::string> lower;
  for (const auto& t : toks) lower.push_back(Lower(t.text));
  // Tokens of a leadership role ("CEO", "Chief Technology Officer", "Co-Founder") in any
  // case: they end a name and never join one.
  std::vector<bool> role(toks.size(), false);
  for (size_t t = 0; t < toks.size();) {
    size_t len = 0;
    if (toks[t].word && !RoleAt(lower, t, true, &len).empty()) {
      std::fill(role.begin() + static_cast<std::ptrdiff_t>(t), role.begin() + static_cast<std::ptrdiff_t>(t + len),
                true);
      t += len;
    } else {
      ++t;
    }
  }
  auto name_word = [&](size_t t) {
    return toks[t].word && IsUpperStart(toks[t].text) && !kStopCaps.count(toks[t].text) && !role[t];
  };
  std::vector<Mention> ms;
  for (size_t i = 0; i < toks.size();) {
    if (!toks[i].word || !IsUpperStart(toks[i].text) || role[i]) {
      ++i;
      continue;
    }
    size_t b = i, e = i;
    while (e + 1 < toks.size()) {
      if (name_word(e + 1)) {
        ++e;
      } else if (e + 2 < toks.size() && kConnectors.count(toks[e + 1].text) && name_word(e + 2)) {
        e += 2;
      } else {
        break;
      }
    }
    i = e + 1;
    // A capitalised role right before a name is a title: "CEO Mara Voss", "Chief Executive
    // Officer Voss" (but not the verb in "Voss will head Helix").
    bool titled = b > 0 && role[b - 1] && IsUpperStart(toks[b - 1].text);
    while (b <= e && (kStopCaps.count(toks[b].text) || kTitles.count(toks[b].text))) {
      titled = titled || kTitles.count(toks[b].text);
      ++b;
    }
    if (b > e) continue;
    Mention m;
    m.first_tok = b;
    m.last_tok = e;
    m.name = sentence.substr(toks[b].begin, toks[e].end - toks[b].begin);
    const std::string& last = toks[e].text;
    std::string prev = b > 0 ? lower[b - 1] : "";
    // "Helix Dynamics", and also "University of Leeds", "Bank of Lumeria".
    bool org_head = b < e && kOrgSuffix.count(toks[b].text) && toks[b + 1].text == "of";
    if (kOrgSuffix.count(last) || org_head) {
      m.type = "Organization";
      m.strength = kExplicit;
    } else if (kLocSuffix.count(last) || (b < e && kLocSuffix.count(toks[b].text))) {
      m.type = "Location";
      m.strength = kExplicit;
    } else if (titled) {
      m.type = "Person";
      m.strength = kExplicit;
    } else if (kLocContext.count(prev)) {
      m.type = "Location";
      m.strength = kContext;
    } else if (e - b >= 1 && e - b <= 2) {
      m.type = "Person";
      m.strength = kDefault;
    } else {
      m.type = "Other";
      m.strength = kDefault;
    }
    ms.push_back(m);
  }

  // Relations between neighbouring names; a gap starting with "and" refers back to the subject.
  struct Rel {
    size_t s, d;
    std::string type;
    const char* sh;
    const char* dh;
  };
  std::vector<Rel> rels;
  auto role_rel = [&](size_t person, size_t org, const std::string& type) {
    rels.push_back({person, org, type, "Person", type == "MAYOR_OF" ? "Location" : "Organization"});
  };
  // "A, who studied at B, advises C": the relative clause's subject A is also the subject
  // of the verb after the clause closes.
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t clause_subject = kNone;
  for (size_t k = 0; k + 1 < ms.size(); ++k) {
    std::vector<std::string> gap;
    bool comma_in_gap = false;
    for (size_t t = ms[k].last_tok + 1; t < ms[k + 1].first_tok; ++t) {
      if (toks[t].word) gap.push_back(lower[t]);
      else comma_in_gap = comma_in_gap || toks[t].text == ",";
    }
    bool comma_first = ms[k].last_tok + 1 < ms[k + 1].first_tok && toks[ms[k].last_tok + 1].text == ",";
    bool possessive = ms[k].last_tok + 1 < ms[k + 1].first_tok &&
                      (toks[ms[k].last_tok + 1].text == "'s" || toks[ms[k].last_tok + 1].text == "'");
    size_t subj = k;
    if (!gap.empty() && gap.front() == "and" && k > 0) {
      subj = 0;
      gap.erase(gap.begin());
    } else if (clause_subject != kNone && comma_first && !gap.empty() && gap.front() != "who" &&
               gap.front() != "which") {
      subj = clause_subject;
      clause_subject = kNone;
    }
    if (comma_first && !gap.empty() && (gap.front() == "who" || gap.front() == "which")) clause_subject = k;
    while (!gap.empty() && (gap.back() == "the" || gap.back() == "a" || gap.back() == "an")) gap.pop_back();
    if (gap.size() > 9) continue;
    // "A is the CEO of B", "A, the CTO of B", "A, CEO of B", "A was appointed CFO of B".
    if (auto types = MatchRole(gap); !types.empty()) {
      for (const auto& type : types) role_rel(subj, k + 1, type);
      // "A, the CTO of B, founded C": like a relative clause, the apposition keeps A the subject.
      if (comma_first) clause_subject = subj;
      continue;
    }
    // "B's CEO A", "B CEO A": the role stands before the person.
    if (subj == k && (possessive || !comma_in_gap)) {
      if (std::string type = MatchPreposedRole(gap); !type.empty()) {
        role_rel(k + 1, k, type);
        continue;
      }
    }
    // "A is B's chief executive", "A, B's CEO, said": the role follows B's possessive.
    size_t after = ms[k + 1].last_tok + 1;
    if (after + 1 < toks.size() && (toks[after].text == "'s" || toks[after].text == "'") &&
        (comma_first || !gap.empty()) && std::all_of(gap.begin(), gap.end(), [](const std::string& w) {
          return kRoleLead.count(w) > 0 && w != "the" && w != "a" && w != "an";
        })) {
      size_t len = 0;
      std::string type = RoleAt(lower, after + 1, false, &len);
      if (!type.empty()) {
        role_rel(subj, k + 1, type);
        continue;
      }
    }
    for (const auto& p : Patterns()) {
      if (!EndsWith(gap, p.words)) continue;
      if (p.words.size() == 1 && p.words[0] == "in" &&
          !(ms[subj].type == "Organization" && ms[k + 1].type == "Location")) {
        break;
      }
      if (p.reversed) rels.push_back({k + 1, subj, p.type, p.dst_hint, p.src_hint});
      else rels.push_back({subj, k + 1, p.type, p.src_hint, p.dst_hint});
      break;
    }
  }
  // Relation hints type names that suffixes and titles left open.
  for (const auto& r : rels) {
    for (auto [idx, hint] : {std::pair{r.s, r.sh}, std::pair{r.d, r.dh}}) {
      if (*hint && ms[idx].strength < kHint) {
        ms[idx].type = hint;
        ms[idx].strength = kHint;
      }
    }
  }
  if (heading) {
    for (const auto& m : ms) {
      if (m.strength == kExplicit) out.AddEntity(m.name, m.type, static_cast<int>(m.strength), sentence);
    }
    return;
  }
  for (const auto& m : ms) out.AddEntity(m.name, m.type, static_cast<int>(m.strength), sentence);
  for (const auto& r : rels) out.AddRelation(ms[r.s].name, ms[r.d].name, r.type);
}

}  // namespace kg::builtin
