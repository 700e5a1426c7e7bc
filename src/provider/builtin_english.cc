// Rule-based extraction for English prose: capitalised name spans typed by suffixes,
// titles and context, relations from the words between two names in one sentence.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <string_view>
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
    "GmbH", "Collective", "Cooperative", "Union", "Alliance", "Works", "Solutions", "Research",
    // industries a company is named with
    "Insurance", "Financial", "Foods", "Mining", "Telecom", "Aerospace", "Electric", "Instruments", "Health",
    "Medical", "Retail", "Freight", "Rail", "Airways", "Pharma", "Chemicals", "Steel", "Textiles", "Data",
    "Mutual", "Bancorp", "Securities", "Brewing", "Apparel", "Devices", "Electronics", "Optics", "Automotive",
    "Construction", "Engineering", "Consulting", "Hotels", "Entertainment", "Gaming", "Beverages", "Brands",
    "Telecommunications", "Utilities", "Petroleum", "Oil", "Gas", "Power", "Renewables", "Semiconductor",
    "Biosciences", "Diagnostics", "Genomics", "Agro", "Hospital", "Clinic", "Newspaper", "Times", "Post",
    "Stores", "Ports", "Clinics", "Services", "Castings", "Lines", "Ferries", "Dairy", "Bearings", "Trucks",
    "Gazette", "Herald", "Review", "Broadcasting", "Timber", "Materials", "Plastics", "Packaging", "Rovers",
    "Athletic", "FC", "Savings", "Towage", "Airlines", "Air", "Logistics"};
const std::set<std::string> kLocSuffix = {"City",   "River",  "Valley",  "Province", "County", "Bay",
                                          "Island", "Islands", "Mountains", "Republic", "Kingdom", "Street",
                                          "Harbor", "Harbour", "Coast", "Lake", "Region", "Port"};
const std::set<std::string> kTitles = {"Dr", "Dr.", "Mr", "Mr.", "Mrs", "Mrs.", "Ms", "Ms.", "Prof", "Prof.",
                                       "Professor", "Sir", "Dame", "Mayor", "Governor", "Senator", "Judge",
                                       "Minister", "Economist", "Coach"};
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
// Words that may head "X of Y" / "X for Y" besides the suffixes: "Chamber of Commerce".
// A person is never such a head, so "Lena Fischer of Kellner University" is two names.
const std::set<std::string> kOfHeads = {"Chamber", "Board", "House", "Bureau", "Office", "Court", "Church",
                                        "Federation", "Commission", "Center", "Centre", "Gulf", "Isle", "Cape",
                                        "State", "States", "Republic", "Kingdom", "Port", "Secretary", "Order"};
// Capitalised common words that are no name on their own: table headers and the generic
// nouns and adverbs that open a sentence ("Analysts said", "Shares fell", "However, ...").
const std::set<std::string> kCommonCaps = {
    "Company", "Companies", "City", "Name", "Names", "Country", "Date", "Role", "Title", "Sector", "Industry",
    "Location", "Headquarters", "Revenue", "Revenues", "Employees", "Year", "Type", "Status", "Person",
    "Organization", "Organisation", "Notes", "Note", "Source", "Sources", "Total", "Analysts", "Analyst",
    "Shares", "Investors", "Officials", "Executives", "Researchers", "Experts", "Critics", "Regulators",
    "Customers", "Workers", "Residents", "Scientists", "Engineers", "Lawmakers", "Observers", "Traders",
    "Economists", "Banks", "Firms", "Prices", "Sales", "Profits", "Earnings", "Stocks", "Markets", "Users",
    "Authorities", "Still", "Yet", "Instead", "Overall", "Separately", "Additionally", "Moreover",
    "Furthermore", "Nevertheless", "Previously", "Currently", "Earlier", "Recently", "Initially", "Finally",
    "Notably", "Indeed", "Here", "Such", "Other", "Another", "New", "Few", "Neither", "Either", "Only", "Even",
    "Asked", "Speaking", "Plans", "Talks", "Details", "Terms", "Financial", "Chinese", "English"};
// Nouns that make an appositive or a possessive corporate: "X, a logistics group,",
// "X's board", "shares of X".
const std::set<std::string> kOrgNouns = {
    "group", "company", "firm", "maker", "manufacturer", "lender", "bank", "insurer", "retailer", "startup",
    "start-up", "operator", "carrier", "conglomerate", "provider", "supplier", "producer", "developer", "giant",
    "chain", "fund", "brokerage", "consultancy", "utility", "airline", "shipper", "distributor", "platform",
    "exchange", "agency", "subsidiary", "unit", "division", "business", "corporation", "enterprise", "miner",
    "refiner", "automaker", "carmaker", "chipmaker", "drugmaker", "publisher", "broadcaster", "builder",
    "contractor", "studio", "label", "organisation", "organization", "nonprofit", "charity", "association",
    "university", "institute", "lab", "laboratory", "foundation", "regulator", "ministry", "cooperative",
    "partnership", "outfit", "house", "owner", "investor", "incubator", "accelerator", "marketplace"};
const std::set<std::string> kPossessedCorporate = {
    "board", "shares", "stock", "revenue", "revenues", "profit", "profits", "earnings", "sales", "subsidiary",
    "subsidiaries", "headquarters", "shareholders", "stake", "unit", "division", "acquisition", "merger",
    "valuation", "ipo", "quarterly", "fiscal", "market", "plant", "factory", "factories", "offices", "stores",
    "fleet", "spokesperson", "spokesman", "spokeswoman", "executives", "ceo", "cfo", "cto", "coo", "chairman",
    "chief", "founder", "founders", "co-founder", "president", "investors", "customers", "products"};
// Words that negate the relation between two names: "did not acquire", "denied founding".
const std::set<std::string> kNegations = {"not", "never", "no", "denied", "denies", "deny", "denying",
                                          "neither", "nor", "refused", "rejected", "declined", "failed",
                                          "abandoned", "scrapped", "cancelled", "canceled", "dropped",
                                          "without", "nobody", "none"};
const std::set<std::string> kMonths = {"january", "february", "march", "april", "may", "june", "july", "august",
                                       "september", "october", "november", "december"};
const std::set<std::string> kAmountWords = {"million", "billion", "thousand", "trillion", "hundred", "m", "bn",
                                            "k", "percent", "dollars", "euros", "pounds", "yuan", "usd", "eur",
                                            "gbp", "us", "cny", "rmb"};
const std::set<std::string> kAppointVerbs = {"elected", "named", "appointed", "hired", "promoted", "tapped",
                                             "picked", "chose", "chosen", "selected", "recruited"};
const std::set<std::string> kSpouses = {"wife", "husband", "spouse"};
const std::set<std::string> kKin = {"wife", "husband", "spouse", "brother", "sister", "son", "daughter",
                                    "father", "mother", "partner", "cousin"};
const std::set<std::string> kReporting = {"said", "says", "announced", "confirmed", "stated", "reported"};
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
      // "Hamburg-based": the place, then a marker the relation rules read.
      static const std::string kBased = "-based";
      if (w.size() > kBased.size() + 1 && w.compare(w.size() - kBased.size(), kBased.size(), kBased) == 0) {
        size_t cut = i - kBased.size();
        out.push_back({s.substr(b, cut - b), b, cut, true});
        out.push_back({kBased, cut, i, false});
        continue;
      }
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

bool IsNumberLike(const std::string& w) {
  // "2014", "12.5", "12m", "3bn", "1990s"
  size_t d = 0;
  while (d < w.size() && (std::isdigit(static_cast<unsigned char>(w[d])) || w[d] == '.' || w[d] == ',')) ++d;
  if (d == 0 || !std::isdigit(static_cast<unsigned char>(w[0]))) return false;
  std::string rest = w.substr(d);
  return rest.empty() || rest == "m" || rest == "bn" || rest == "b" || rest == "k" || rest == "s";
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
         "was co-founded by", "founded by", "co-founded by", "was set up by", "were co-founded by"},
        "FOUNDED", true, O, "");
    add({"acquired", "bought", "purchased", "took over", "has acquired", "agreed to acquire"}, "ACQUIRED", false, O,
        O);
    add({"completed its purchase of", "completed the purchase of", "completed its acquisition of",
         "completed the acquisition of", "completed its takeover of", "completed the takeover of"},
        "ACQUIRED", false, O, O);
    add({"was acquired by", "was bought by", "was purchased by", "acquired by"}, "ACQUIRED", true, O, O);
    add({"is headquartered in", "headquartered in", "is based in", "based in", "is located in", "located in",
         "has its headquarters in", "moved its headquarters to", "relocated to"},
        "LOCATED_IN", false, O, L);
    add({"was born in", "born in"}, "BORN_IN", false, P, L);
    add({"lives in", "moved to", "grew up in"}, "LIVES_IN", false, P, L);
    add({"joins from", "joined from", "came from", "comes from", "arrives from", "arrived from"}, "WORKS_AT",
        false, P, O);
    add({"was led by", "is led by", "led by", "is run by", "run by", "was run by", "headed by", "is headed by",
         "was headed by"},
        "LEADS", true, O, P);
    add({"opened offices in", "has offices in", "opened a plant in", "opened a store in", "opened an office in", "opened a factory in", "opened a lab in", "expanded to", "expanded into",
         "operates in", "built a plant in", "opened a branch in"},
        "OPERATES_IN", false, O, L);
    add({"partnered with", "signed an agreement with", "collaborates with", "collaborated with",
         "formed a partnership with", "teamed up with", "signed a partnership with", "works with",
         "entered a joint venture with"},
        "PARTNER_OF", false, "", "");
    add({"invested in", "invested into", "funded", "financed", "backed", "led a funding round in", "led a round in",
         "led the round in", "co-led a round in", "joined a round in", "participated in a round in",
         "led a round for", "took a stake in", "acquired a stake in", "bought a stake in", "holds a stake in",
         "took a minority stake in", "acquired a minority stake in", "bought a minority stake in"},
        "INVESTED_IN", false, "", O);
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
    add({"chairs", "chaired"}, "CHAIR_OF", false, P, O);
    add({"mentored", "mentors", "trained"}, "MENTORED", false, P, P);
    add({"advises", "advised"}, "ADVISES", false, P, "");
    add({"was advised by", "is advised by", "were advised by", "advised by"}, "ADVISES", true, "", "");
    add({"teaches at", "taught at", "lectures at", "lectured at"}, "WORKS_AT", false, P, O);
    add({"holds a doctorate from", "holds a degree from", "has a doctorate from", "has a degree from",
         "received a doctorate from", "received a degree from", "earned a doctorate from", "earned a phd from",
         "holds a phd from"},
        "STUDIED_AT", false, P, O);
    add({"was spun off from", "spun off from", "was spun out of", "spun out of", "was spun out from"}, "SPUN_OFF",
        true, O, O);
    add({"licensed its technology to", "licenses its technology to", "licensed"}, "LICENSED_TO", false, O, O);
    add({"spun off", "spun out"}, "SPUN_OFF", false, O, O);
    add({"in"}, "LOCATED_IN", false, O, L);  // only between an organisation and a place (checked below)
    add({"of"}, "WORKS_AT", false, P, O);      // only between a person and an organisation (checked below)
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
      {"researchers", "WORKS_AT", false}, {"engineers", "WORKS_AT", false}, {"scientists", "WORKS_AT", false},
      {"employees", "WORKS_AT", false}, {"surgeon", "WORKS_AT", false}, {"doctor", "WORKS_AT", false},
      {"physician", "WORKS_AT", false}, {"lawyer", "WORKS_AT", false}, {"partner", "WORKS_AT", false},
      {"managing partner", "WORKS_AT", false}, {"treasurer", "WORKS_AT", false}, {"economist", "WORKS_AT", false},
      {"lecturer", "WORKS_AT", false}, {"editor", "WORKS_AT", false}, {"reporter", "WORKS_AT", false},
      {"consultant", "WORKS_AT", false}, {"executive", "WORKS_AT", false}, {"executives", "WORKS_AT", false},
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
    "remained", "has", "been", "then", "currently", "still", "two", "three", "both", "veteran", "principal"};

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
                                       "in", "year", "early", "late", "last", "she", "he", "they", "it",
                                       "previously", "formerly", "briefly", "initially", "ultimately",
                                       "reportedly", "finally", "already", "successfully", "would", "will"};

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

// The gap without what may stand between a verb and its object: amounts ("$12 million"),
// dates ("in March 2014"), funding-round labels ("a $30 million Series B round").
std::vector<std::string> Simplify(const std::vector<std::string>& gap) {
  static const std::set<std::string> kTimePreps = {"in", "on", "since", "during", "around", "early", "late", "mid"};
  static const std::set<std::string> kRoundWords = {"funding", "financing", "investment", "seed", "venture",
                                                    "growth", "pre-seed"};
  std::vector<std::string> out;
  for (size_t i = 0; i < gap.size(); ++i) {
    const std::string& w = gap[i];
    bool amount = kAmountWords.count(w) && i > 0 && (IsNumberLike(gap[i - 1]) || kAmountWords.count(gap[i - 1]));
    bool time = IsNumberLike(w) || kMonths.count(w);
    if (time) {
      while (!out.empty() && kTimePreps.count(out.back())) out.pop_back();
      continue;
    }
    if (amount) continue;
    if (w == "series" && i + 1 < gap.size() && gap[i + 1].size() == 1) {
      ++i;
      continue;
    }
    if (kRoundWords.count(w) && i + 1 < gap.size() && (gap[i + 1] == "round" || kRoundWords.count(gap[i + 1]))) continue;
    out.push_back(w);
  }
  return out;
}

bool Negated(const std::vector<std::string>& gap) {
  return std::any_of(gap.begin(), gap.end(), [](const std::string& w) {
    return kNegations.count(w) > 0 || (w.size() > 3 && w.compare(w.size() - 3, 3, "n't") == 0);
  });
}

// A past participle opening an apposition: ", headquartered in", ", founded by".
bool Participle(const std::string& w) {
  static const std::set<std::string> kIrregular = {"born", "run", "built", "known", "led", "held", "owned", "set"};
  return kIrregular.count(w) > 0 || (w.size() > 4 && w.compare(w.size() - 2, 2, "ed") == 0);
}

}  // namespace

bool IsOrgSuffixWord(const std::string& word) { return kOrgSuffix.count(word) > 0; }

void ExtractEnglishSentence(const std::string& sentence, bool heading, Collector& out) {
  std::vector<Token> toks = Tokenize(sentence);
  std::vector<std::string> lower;
  for (const auto& t : toks) lower.push_back(Lower(t.text));
  // Tokens of a leadership role ("CEO", "Chief Technology Officer", "Co-Founder") in any
  // case: they end a name and never join one. A funding round's label ("Series B") is no
  // name either.
  std::vector<bool> role(toks.size(), false);
  for (size_t t = 0; t < toks.size();) {
    size_t len = 0;
    if (toks[t].word && !RoleAt(lower, t, true, &len).empty()) {
      std::fill(role.begin() + static_cast<std::ptrdiff_t>(t), role.begin() + static_cast<std::ptrdiff_t>(t + len),
                true);
      t += len;
    } else if (toks[t].text == "Series" && t + 1 < toks.size() && toks[t + 1].text.size() == 1) {
      role[t] = role[t + 1] = true;
      t += 2;
    } else {
      ++t;
    }
  }
  auto name_word = [&](size_t t) {
    return toks[t].word && IsUpperStart(toks[t].text) && !kStopCaps.count(toks[t].text) && !role[t];
  };
  auto next_word = [&](size_t t) -> std::string { return t < toks.size() ? lower[t] : ""; };
  size_t first_word = 0;
  while (first_word < toks.size() && !toks[first_word].word) ++first_word;
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
      } else if (e + 2 < toks.size() && kConnectors.count(toks[e + 1].text) && name_word(e + 2) &&
                 ((toks[e + 1].text != "of" && toks[e + 1].text != "for") || kOrgSuffix.count(toks[e].text) ||
                  kLocSuffix.count(toks[e].text) || kOfHeads.count(toks[e].text))) {
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
    // One word that is a common noun or only a suffix ("Analysts", "Company", "City"), or a
    // sentence's first word found in lower case later in the sentence, is no name.
    if (b == e && (kCommonCaps.count(toks[b].text) || kOrgSuffix.count(toks[b].text) ||
                   kLocSuffix.count(toks[b].text) ||
                   (b == first_word && std::find(lower.begin() + static_cast<std::ptrdiff_t>(b + 1), lower.end(),
                                                 lower[b]) != lower.end() &&
                    std::none_of(toks.begin() + static_cast<std::ptrdiff_t>(b + 1), toks.end(),
                                 [&](const Token& t) { return t.text == toks[b].text; })))) {
      continue;
    }
    Mention m;
    m.first_tok = b;
    m.last_tok = e;
    m.name = sentence.substr(toks[b].begin, toks[e].end - toks[b].begin);
    const std::string& last = toks[e].text;
    std::string prev = b > 0 ? lower[b - 1] : "";
    std::string prev2 = b > 1 ? lower[b - 2] : "";
    // "Helix Dynamics", and also "University of Leeds", "Bank of Lumeria".
    bool org_head = false;
    for (size_t t = b; t < e; ++t) {
      org_head = org_head || (kOrgSuffix.count(toks[t].text) && toks[t + 1].text == "of") || toks[t + 1].text == "&";
    }
    // Company context: "shares of X", "X's board", "X shares fell", "X said in a filing",
    // "X, a logistics group,".
    size_t after = e + 1;
    bool poss = after < toks.size() && (toks[after].text == "'s" || toks[after].text == "'");
    bool corporate = ((prev == "of" || prev == "in") && (prev2 == "shares" || prev2 == "stake" ||
                                                         prev2 == "shareholders" || prev2 == "stock")) ||
                     (poss && kPossessedCorporate.count(next_word(after + 1))) ||
                     (!poss && (next_word(after) == "shares" || next_word(after) == "stock")) ||
                     (next_word(after) == "said" && next_word(after + 1) == "in" &&
                      std::any_of(lower.begin() + static_cast<std::ptrdiff_t>(std::min(after + 2, lower.size())),
                                  lower.begin() + static_cast<std::ptrdiff_t>(std::min(after + 7, lower.size())),
                                  [](const std::string& w) { return w == "filing" || w == "statement"; }) &&
                      e > b) ||
                     (next_word(after) == "reported" || next_word(after) == "posted") ||
                     // "X said on Monday it had ...": a company speaks of itself as "it".
                     ((next_word(after) == "said" || next_word(after) == "says" || next_word(after) == "announced") &&
                      [&] {
                        for (size_t t = after + 1; t < toks.size() && t < after + 6; ++t) {
                          if (lower[t] == "it" || lower[t] == "its") return true;
                          if (toks[t].word && IsUpperStart(toks[t].text) && !kStopCaps.count(toks[t].text)) return false;
                        }
                        return false;
                      }()) ||
                     // "analysts at X", "engineers at X"
                     (prev == "at" && (prev2 == "analysts" || prev2 == "economists" || prev2 == "engineers" ||
                                       prev2 == "researchers" || prev2 == "executives" || prev2 == "employees" ||
                                       prev2 == "staff" || prev2 == "strategists")) ||
                     (next_word(after) == "went" && next_word(after + 1) == "public") ||
                     // "the Pantry Plus chain", "its Orbis unit"
                     ((prev == "the" || prev == "its" || prev == "their") && kOrgNouns.count(next_word(after)));
    if (after < toks.size() && toks[after].text == "," && (next_word(after + 1) == "a" ||
                                                         next_word(after + 1) == "an" ||
                                                         next_word(after + 1) == "the")) {
      for (size_t t = after + 2; t < toks.size() && toks[t].text != "," && t < after + 9; ++t) {
        if (toks[t].word && IsUpperStart(toks[t].text) && !toks[t].text.empty() && lower[t] != "based") {
          // a name inside: a role apposition ("the CTO of Helix"), not a description
          if (t + 1 < toks.size() && toks[t + 1].text == "-") continue;
        }
        if (kOrgNouns.count(lower[t]) && (t + 1 >= toks.size() || toks[t + 1].text == "," ||
                                          toks[t + 1].text == "." || !toks[t + 1].word)) {
          corporate = true;
        }
      }
    }
    if (kOrgSuffix.count(last) || org_head) {
      m.type = "Organization";
      m.strength = kExplicit;
    } else if (kLocSuffix.count(last) || (b < e && kLocSuffix.count(toks[b].text))) {
      m.type = "Location";
      m.strength = kExplicit;
    } else if (titled) {
      m.type = "Person";
      m.strength = kExplicit;
    } else if (corporate) {
      m.type = "Organization";
      m.strength = kHint;
    } else if (kLocContext.count(prev) || (after < toks.size() && toks[after].text == "-based")) {
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
  // A pronoun before any name, opening the sentence or a clause ("She founded ...",
  // "In 2019, he joined ..."), is the person of the previous sentence.
  // A pronoun or "the company" at token `t` stands for a name of the previous sentence.
  auto refer_back = [&ms](const std::string& name, const char* type, size_t t) {
    Mention m;
    m.name = name;
    m.type = type;
    m.strength = kHint;
    m.first_tok = m.last_tok = t;
    ms.insert(ms.begin(), m);
  };
  if (!out.last_person().empty()) {
    size_t limit = ms.empty() ? toks.size() : ms.front().first_tok;
    for (size_t t = 0; t < limit; ++t) {
      if ((lower[t] == "she" || lower[t] == "he") &&
          (t == first_word || toks[t - 1].text == "," || kStopCaps.count(toks[t - 1].text))) {
        refer_back(out.last_person(), "Person", t);
        break;
      }
    }
  }

  // "The company ..." or "It ..." opening the sentence, before any name, is the organisation
  // of the previous sentence.
  if (!out.last_org().empty() && first_word < toks.size() && (ms.empty() || ms.front().first_tok > first_word)) {
    size_t t = first_word;
    bool refers = (lower[t] == "it" && t + 1 < toks.size() && toks[t + 1].word) ||
                  (lower[t] == "the" && t + 1 < toks.size() && kOrgNouns.count(lower[t + 1]) &&
                   (ms.empty() || ms.front().first_tok > t + 2) && t + 2 < toks.size() && toks[t + 2].word &&
                   !IsUpperStart(toks[t + 2].text));
    if (refers) {
      if (lower[t] == "the") ++t;
      refer_back(out.last_org(), "Organization", t);
    }
  }

  // Relations between neighbouring names; a gap starting with "and" refers back to the subject.
  struct Rel {
    size_t s, d;
    std::string type;
    const char* sh;
    const char* dh;
  };
  std::vector<Rel> rels;
  std::vector<std::pair<size_t, size_t>> conjuncts;  // "A and B": B stands wherever A does
  auto role_rel = [&](size_t person, size_t org, const std::string& type) {
    rels.push_back({person, org, type, "Person", type == "MAYOR_OF" ? "Location" : "Organization"});
  };
  // The nearest person before mention k (or k itself), for "his wife Z".
  auto person_before = [&](size_t k) -> size_t {
    for (size_t j = k + 1; j-- > 0;) {
      // typed by a relation found so far ("Ombra Foods" in "A founded Ombra Foods with his wife B")
      bool other = std::any_of(rels.begin(), rels.end(), [&](const Rel& r) {
        return (r.s == j && *r.sh && std::string_view(r.sh) != "Person") ||
               (r.d == j && *r.dh && std::string_view(r.dh) != "Person");
      });
      if (ms[j].type == "Person" && (ms[j].strength >= kHint || !other)) return j;
    }
    return static_cast<size_t>(-1);
  };
  // "A, who studied at B, advises C": the relative clause's subject A is also the subject
  // of the verb after the clause closes.
  constexpr size_t kNone = static_cast<size_t>(-1);
  size_t clause_subject = kNone;
  size_t based_apposition = kNone;
  size_t joined_subject = kNone;  // "A joined B in 2014 from C": C is a past employer of A
  for (size_t k = 0; k + 1 < ms.size(); ++k) {
    std::vector<std::string> gap;
    bool comma_in_gap = false;
    size_t gap_begin = ms[k].last_tok + 1;
    // An apposition without a name describes A and keeps it the subject: "A, a logistics
    // group, acquired B" reads as "A acquired B".
    if (gap_begin < ms[k + 1].first_tok && toks[gap_begin].text == "," &&
        (next_word(gap_begin + 1) == "a" || next_word(gap_begin + 1) == "an" || next_word(gap_begin + 1) == "the")) {
      for (size_t t = gap_begin + 1; t < ms[k + 1].first_tok; ++t) {
        if (toks[t].text == ",") {
          gap_begin = t + 1;
          break;
        }
      }
    }
    for (size_t t = gap_begin; t < ms[k + 1].first_tok; ++t) {
      if (toks[t].word) gap.push_back(lower[t]);
      else comma_in_gap = comma_in_gap || toks[t].text == ",";
    }
    bool comma_first = ms[k].last_tok + 1 < ms[k + 1].first_tok && toks[ms[k].last_tok + 1].text == ",";
    // "..., who founded B in 2012, married C": a date before the comma still closes the clause.
    if (!comma_first) {
      std::vector<std::string> lead;
      size_t t = ms[k].last_tok + 1;
      for (; t < ms[k + 1].first_tok && toks[t].text != ","; ++t) {
        if (toks[t].word) lead.push_back(lower[t]);
      }
      comma_first = t < ms[k + 1].first_tok && !lead.empty() && Simplify(lead).empty();
    }
    bool possessive = ms[k].last_tok + 1 < ms[k + 1].first_tok &&
                      (toks[ms[k].last_tok + 1].text == "'s" || toks[ms[k].last_tok + 1].text == "'");
    size_t subj = k;
    // "A, B and C": a list of names joined by commas and closed by "and" or "or"; each
    // neighbour stands wherever the other does ("supplies axles to A, B and C").
    if (gap.empty() && comma_in_gap && ms[k].last_tok + 2 == ms[k + 1].first_tok && [&] {
          for (size_t j = k + 1; j + 1 < ms.size(); ++j) {
            std::vector<std::string> link;
            bool comma = false;
            for (size_t t = ms[j].last_tok + 1; t < ms[j + 1].first_tok; ++t) {
              if (toks[t].word) link.push_back(lower[t]);
              else if (toks[t].text == ",") comma = true;
              else return false;
            }
            if (link.size() == 1 && (link[0] == "and" || link[0] == "or")) return true;
            if (!link.empty() || !comma) return false;
          }
          return false;
        }()) {
      conjuncts.emplace_back(k, k + 1);
      continue;
    }
    // "A, a cardiologist at B, trained at C": an occupation at an organisation; A works at B
    // and stays the subject of the verb after the apposition.
    if (comma_first && gap.size() == 3 && (gap[0] == "a" || gap[0] == "an") && gap[2] == "at" &&
        ms[k].type == "Person" && !kOrgNouns.count(gap[1]) && ms[k + 1].type != "Location" &&
        std::all_of(gap[1].begin(), gap[1].end(), [](char c) { return std::islower(static_cast<unsigned char>(c)) != 0; })) {
      rels.push_back({subj, k + 1, "WORKS_AT", "Person", "Organization"});
      clause_subject = subj;
      continue;
    }
    // "A, a start-up from B, raised ...", "A, a charity in B": a described organisation of a
    // place; the apposition keeps A the subject of the verb after its closing comma.
    if (comma_first && gap.size() >= 3 && gap.size() <= 5 && (gap[0] == "a" || gap[0] == "an") &&
        (gap.back() == "from" || gap.back() == "in") && kOrgNouns.count(gap[gap.size() - 2]) &&
        ms[k + 1].strength < kHint) {
      rels.push_back({subj, k + 1, "LOCATED_IN", "Organization", "Location"});
      based_apposition = subj;
      continue;
    }
    if (Negated(gap)) {
      clause_subject = kNone;
      continue;
    }
    if (gap.size() == 1 && gap[0] == "and" && !possessive) {
      conjuncts.emplace_back(k, k + 1);
      // "A and B announced a partnership", "A and B formed a joint venture"
      for (size_t t = ms[k + 1].last_tok + 1; t < toks.size() && t < ms[k + 1].last_tok + 6; ++t) {
        if (!toks[t].word) break;
        if (lower[t] == "partnership" || lower[t] == "alliance" || lower[t] == "venture" || lower[t] == "collaboration") {
          rels.push_back({k, k + 1, "PARTNER_OF", "", ""});
          break;
        }
      }
      continue;
    }
    // "A and his brother B", "A and her wife B": B stands with A (and a spouse is married to A).
    if (gap.size() == 3 && gap[0] == "and" && (gap[1] == "his" || gap[1] == "her" || gap[1] == "their") &&
        kKin.count(gap[2])) {
      conjuncts.emplace_back(k, k + 1);
      if (kSpouses.count(gap[2])) rels.push_back({k, k + 1, "MARRIED_TO", "Person", "Person"});
      continue;
    }
    // "A, a Hamburg-based company, acquired B": the -based pass below reads A and Hamburg; the
    // apposition keeps A the subject of the verb after its closing comma.
    if (ms[k + 1].last_tok + 1 < toks.size() && toks[ms[k + 1].last_tok + 1].text == "-based") {
      if (comma_first) based_apposition = subj;
      continue;
    }
    if (based_apposition != kNone) {
      size_t close = ms[k].last_tok + 1;
      while (close < ms[k + 1].first_tok && toks[close].text != ",") ++close;
      if (close < ms[k + 1].first_tok) {
        gap.clear();
        for (size_t t = close + 1; t < ms[k + 1].first_tok; ++t) {
          if (toks[t].word) gap.push_back(lower[t]);
        }
        subj = based_apposition;
        comma_first = false;
      }
      based_apposition = kNone;
    }
    if (subj == k && !gap.empty() && gap.front() == "and" && k > 0) {
      subj = 0;
      gap.erase(gap.begin());
    } else if (clause_subject != kNone && comma_first && !gap.empty() && gap.front() != "who" &&
               gap.front() != "which") {
      subj = clause_subject;
      clause_subject = kNone;
    }
    // "A, a foundry group based in B,": the description before the participle is read past.
    if (comma_first && gap.size() >= 3 && (gap.front() == "a" || gap.front() == "an" || gap.front() == "the")) {
      for (size_t j = 1; j < gap.size() && j <= 5; ++j) {
        if (Participle(gap[j]) && j + 1 < gap.size()) {
          gap.erase(gap.begin(), gap.begin() + static_cast<std::ptrdiff_t>(j));
          break;
        }
      }
    }
    auto first_content = std::find_if(gap.begin(), gap.end(), [](const std::string& w) { return !kFiller.count(w); });
    if (comma_first && !gap.empty() &&
        (gap.front() == "who" || gap.front() == "which" || (first_content != gap.end() && Participle(*first_content)))) {
      clause_subject = subj;
    }
    while (!gap.empty() && (gap.back() == "the" || gap.back() == "a" || gap.back() == "an")) gap.pop_back();
    // "A said (on Monday) (that) it had invested in B": the report's subject is the verb's.
    if (!gap.empty() && kReporting.count(gap.front())) {
      for (size_t j = gap.size(); j-- > 1;) {
        if (gap[j] == "it" || gap[j] == "that" || gap[j] == "he" || gap[j] == "she" || gap[j] == "they") {
          gap.erase(gap.begin(), gap.begin() + static_cast<std::ptrdiff_t>(j + 1));
          break;
        }
      }
    }
    gap = Simplify(gap);
    if (gap.size() > 9) continue;
    // Spouses: "A married B" is a pattern; "A and his wife B", "A's wife B".
    if (!gap.empty() && kSpouses.count(gap.back()) &&
        (possessive ? gap.size() == 1
                    : gap.size() >= 2 && (gap[gap.size() - 2] == "his" || gap[gap.size() - 2] == "her"))) {
      size_t spouse = possessive ? k : person_before(k);
      if (spouse != kNone && spouse != k + 1) rels.push_back({spouse, k + 1, "MARRIED_TO", "Person", "Person"});
      continue;
    }
    // "A is the CEO of B", "A, the CTO of B", "A, CEO of B", "A was appointed CFO of B".
    // "A, chief executive of the supermarket chain B": a description of B after the role's
    // preposition is read past ("the <up to three words ending in an organisation noun>").
    std::vector<std::string> role_gap = gap;
    for (size_t j = role_gap.size(); j-- > 1 && role_gap.size() - j <= 4;) {
      if (role_gap[j] != "the" && role_gap[j] != "a" && role_gap[j] != "an") continue;
      const std::string& prep = role_gap[j - 1];
      if ((prep == "of" || prep == "at") && j + 1 < role_gap.size() && kOrgNouns.count(role_gap.back())) {
        role_gap.resize(j);
      }
      break;
    }
    if (auto types = MatchRole(role_gap); !types.empty()) {
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
    size_t after = ms[k + 1].last_tok + 1;
    auto content = std::find_if(gap.begin(), gap.end(), [](const std::string& w) { return !kFiller.count(w); });
    // "B elected A as its chairman", "B named A chief executive": the role follows A.
    if (content != gap.end() && content + 1 == gap.end() && kAppointVerbs.count(*content)) {
      size_t t = after;
      while (t < toks.size() && (lower[t] == "as" || lower[t] == "its" || lower[t] == "their" || lower[t] == "the" ||
                                 lower[t] == "new" || lower[t] == "interim" || lower[t] == "acting" ||
                                 lower[t] == "next" || lower[t] == "permanent")) {
        ++t;
      }
      size_t len = 0;
      std::string type = RoleAt(lower, t, false, &len);
      if (!type.empty() && type != "INVESTED_IN" && next_word(t + len) != "of") {
        role_rel(k + 1, subj, type);
        continue;
      }
    }
    // "A is B's chief executive", "A, B's CEO, said": the role follows B's possessive.
    if (after + 1 < toks.size() && (toks[after].text == "'s" || toks[after].text == "'") &&
        (comma_first || !gap.empty()) && std::all_of(gap.begin(), gap.end(), [](const std::string& w) {
          return kRoleLead.count(w) > 0 && w != "the" && w != "a" && w != "an";
        })) {
      if (kSpouses.count(lower[after + 1])) {  // "A, B's wife, said"
        rels.push_back({subj, k + 1, "MARRIED_TO", "Person", "Person"});
        continue;
      }
      size_t len = 0;
      std::string type = RoleAt(lower, after + 1, false, &len);
      if (!type.empty()) {
        role_rel(subj, k + 1, type);
        continue;
      }
    }
    // "A joined B in 2014 from C": C employed A before.
    if (joined_subject != kNone && gap.size() == 1 && gap[0] == "from") {
      rels.push_back({joined_subject, k + 1, "WORKS_AT", "Person", "Organization"});
      joined_subject = kNone;
      continue;
    }
    joined_subject = kNone;
    // "A studied engineering at B", "A spent a decade at B".
    if (content != gap.end() && gap.size() <= 6 && gap.back() == "at" && content + 1 != gap.end() &&
        (*content == "studied" || *content == "spent")) {
      if (*content == "studied") rels.push_back({subj, k + 1, "STUDIED_AT", "Person", "Organization"});
      else rels.push_back({subj, k + 1, "WORKS_AT", "Person", "Organization"});
      continue;
    }
    // "A joined B's board": a board seat, not employment.
    if (!gap.empty() && gap.back() == "joined" && after + 1 < toks.size() &&
        (toks[after].text == "'s" || toks[after].text == "'") && lower[after + 1] == "board") {
      rels.push_back({subj, k + 1, "MEMBER_OF", "Person", "Organization"});
      continue;
    }
    // "founded the logistics startup B", "married the novelist B": a description of B between
    // the verb and B is read past when the gap does not match as it stands.
    bool matches = std::any_of(Patterns().begin(), Patterns().end(), [&](const Pattern& p) { return EndsWith(gap, p.words); });
    if (!matches) {
      static const std::set<std::string> kPreps = {"of", "in", "at", "to", "for", "with", "by", "from", "on", "and"};
      for (size_t j = gap.size(); j-- > 0 && gap.size() - j <= 4;) {
        if (gap[j] != "the" && gap[j] != "a" && gap[j] != "an") continue;
        if (j + 1 < gap.size() && std::none_of(gap.begin() + static_cast<std::ptrdiff_t>(j + 1), gap.end(),
                                               [&](const std::string& w) { return kPreps.count(w) > 0; })) {
          gap.resize(j);
        }
        break;
      }
    }
    // "Mayor A of B": the mayor heads the place.
    if (subj == k && gap.size() == 1 && gap[0] == "of" && ms[k].first_tok > 0 && lower[ms[k].first_tok - 1] == "mayor") {
      rels.push_back({k, k + 1, "HEAD_OF", "Person", "Location"});
      continue;
    }
    // The gap's words after its first content word, and whether a preposition stands among
    // them before the last word.
    static const std::set<std::string> kInnerPreps = {"of", "in", "at", "to", "for", "with", "by", "from", "on",
                                                      "and", "across", "into"};
    const auto verb = std::find_if(gap.begin(), gap.end(), [](const std::string& w) { return !kFiller.count(w); });
    auto object_gap = [&](size_t max) {
      return verb != gap.end() && gap.size() <= max &&
             std::none_of(verb + 1, gap.end() - 1, [](const std::string& w) { return kInnerPreps.count(w) > 0; });
    };
    // "A sold a (minority|30%) stake to B": B invested in A.
    if (object_gap(6) && (*verb == "sold" || *verb == "sells") && gap.back() == "to" &&
        std::find(gap.begin(), gap.end(), "stake") != gap.end()) {
      rels.push_back({k + 1, subj, "INVESTED_IN", "", "Organization"});
      continue;
    }
    // "A supplies axles to B", "A sold turbines to B": a verb of supply, its object, "to".
    static const std::set<std::string> kSupplyVerbs = {"supplies", "supplied", "sells", "sold", "provides",
                                                       "provided", "delivers", "delivered", "ships", "shipped"};
    static const std::set<std::string> kNotGoods = {"stake", "stakes", "shares", "business", "unit", "division",
                                                    "itself", "subsidiary", "arm", "company", "assets"};
    if (object_gap(6) && gap.back() == "to" && kSupplyVerbs.count(*verb) && verb + 2 <= gap.end() - 1 &&
        std::none_of(gap.begin(), gap.end(), [](const std::string& w) { return kNotGoods.count(w) > 0; })) {
      rels.push_back({subj, k + 1, "SUPPLIES", "Organization", "Organization"});
      continue;
    }
    // "A licensed its coating process to B": licensing, with its object before "to".
    if (object_gap(6) && gap.back() == "to" && (*verb == "licensed" || *verb == "licenses") && verb + 2 <= gap.end() - 1) {
      rels.push_back({subj, k + 1, "LICENSED_TO", "Organization", "Organization"});
      continue;
    }
    // "A previously ran the retail bank at B", "A led the chemistry group at B", "A was head of
    // operations at B": a part of B that A ran or headed; A worked at B.
    static const std::set<std::string> kRanVerbs = {"ran", "runs", "led", "leads", "headed", "heads", "managed",
                                                    "manages", "oversaw", "oversees"};
    if (verb != gap.end() && gap.size() <= 7 && gap.back() == "at" &&
        (ms[subj].type == "Person" || ms[subj].type == "Other") &&
        std::none_of(gap.begin(), gap.end(), [](const std::string& w) { return w == "which" || w == "it"; }) &&
        ((object_gap(7) && kRanVerbs.count(*verb) && verb + 1 < gap.end() &&
          (verb[1] == "the" || verb[1] == "its" || verb[1] == "a")) ||
         (*verb == "head" && verb + 2 < gap.end() - 1 && verb[1] == "of" &&
          std::none_of(verb + 2, gap.end() - 1, [](const std::string& w) { return kInnerPreps.count(w) > 0; })))) {
      rels.push_back({subj, k + 1, "WORKS_AT", "Person", "Organization"});
      continue;
    }
    // "A operates wind farms in B", "A, which has 58 branches across B", "A employs 400 people
    // in B": a verb of having or running, a plural of sites or staff, then the place.
    static const std::set<std::string> kSiteVerbs = {"operates", "operated", "runs", "ran", "has", "had", "owns",
                                                     "employs", "employed", "manages", "opened", "built"};
    static const std::set<std::string> kSites = {
        "plants", "stores", "branches", "offices", "farms", "factories", "sites", "mines", "warehouses", "depots",
        "programmes", "programs", "operations", "hotels", "clinics", "restaurants", "people", "staff", "employees",
        "workers", "fields", "terminals", "outlets", "shops", "centres", "centers", "mills", "hospitals", "schools",
        "routes", "facilities", "plant", "factory", "office", "mine", "warehouse", "depot", "store", "branch"};
    if (gap.size() >= 2 && gap.size() <= 6 && (gap.back() == "in" || gap.back() == "across" || gap.back() == "throughout") &&
        kSites.count(gap[gap.size() - 2]) &&
        std::any_of(gap.begin(), gap.end(), [](const std::string& w) { return kSiteVerbs.count(w) > 0; }) &&
        std::none_of(gap.begin(), gap.end() - 1, [](const std::string& w) { return kInnerPreps.count(w) > 0; }) &&
        ms[subj].type != "Location" && ms[k + 1].strength < kHint) {
      rels.push_back({subj, k + 1, "OPERATES_IN", "Organization", "Location"});
      continue;
    }
    for (const auto& p : Patterns()) {
      if (!EndsWith(gap, p.words)) continue;
      if (p.words.back() == "joined") joined_subject = subj;
      if (p.words.size() == 1 && p.words[0] == "in" &&
          !(ms[subj].type == "Organization" && ms[k + 1].type == "Location")) {
        break;
      }
      // "works for B in Z", "met executives of B in Z": an organisation that is the object of a
      // preposition does not own the place; the place belongs to the clause (where A works or met).
      if (p.words.size() == 1 && p.words[0] == "in" && ms[subj].first_tok > 0) {
        static const std::set<std::string> kObjectPreps = {"for", "at", "with", "of", "to", "from", "by"};
        if (kObjectPreps.count(lower[ms[subj].first_tok - 1])) break;
      }
      // "Rui Okada of Varnholt University": a person of an organisation named by its suffix.
      if (p.words.size() == 1 && p.words[0] == "of" &&
          !(subj == k && ms[k].type == "Person" && ms[k + 1].type == "Organization" &&
            ms[k + 1].strength == kExplicit)) {
        break;
      }
      if (p.reversed) rels.push_back({k + 1, subj, p.type, p.dst_hint, p.src_hint});
      else rels.push_back({subj, k + 1, p.type, p.src_hint, p.dst_hint});
      break;
    }
  }
  // "A, a Hamburg-based company," -> A LOCATED_IN Hamburg; "the Hamburg-based firm A" likewise.
  for (size_t k = 0; k < ms.size(); ++k) {
    size_t marker = ms[k].last_tok + 1;
    if (marker >= toks.size() || toks[marker].text != "-based") continue;
    bool before = k > 0 && [&] {
      for (size_t t = ms[k - 1].last_tok + 1; t < ms[k].first_tok; ++t) {
        if (toks[t].word && lower[t] != "a" && lower[t] != "an" && lower[t] != "the") return false;
      }
      return ms[k - 1].last_tok + 1 < ms[k].first_tok && toks[ms[k - 1].last_tok + 1].text == ",";
    }();
    bool after = !before && k + 1 < ms.size() && ms[k + 1].first_tok - marker <= 4 && [&] {
      for (size_t t = marker + 1; t < ms[k + 1].first_tok; ++t) {
        if (!toks[t].word || IsUpperStart(toks[t].text)) return false;
      }
      return true;
    }();
    if (before) rels.push_back({k - 1, k, "LOCATED_IN", "Organization", "Location"});
    if (after) rels.push_back({k + 1, k, "LOCATED_IN", "Organization", "Location"});
  }
  // "A and B founded C", "founded by A and B": each conjunct takes part in the other's relations.
  for (const auto& [a, b] : conjuncts) {
    const size_t n = rels.size();
    for (size_t r = 0; r < n; ++r) {
      Rel x = rels[r];
      for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
        Rel y = x;
        if (y.s == from && y.d != to) y.s = to;
        else if (y.d == from && y.s != to) y.d = to;
        else continue;
        bool known = std::any_of(rels.begin(), rels.end(),
                                 [&](const Rel& z) { return z.s == y.s && z.d == y.d && z.type == y.type; });
        if (!known) rels.push_back(y);
      }
    }
  }
  // Conjuncts share a type only one of them has evidence for: "ports in Gdansk and Riga".
  for (const auto& [a, b] : conjuncts) {
    Mention& x = ms[a];
    Mention& y = ms[b];
    if (x.strength > kDefault && y.strength == kDefault) {
      y.type = x.type;
      y.strength = kContext;
    } else if (y.strength > kDefault && x.strength == kDefault) {
      x.type = y.type;
      x.strength = kContext;
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
  for (const auto& r : rels) out.AddRelation(ms[r.s].name, ms[r.d].name, r.type, sentence);
  for (const std::string type : {"Person", "Organization"}) {
    for (const auto& m : ms) {
      if (m.type != type) continue;
      if (type == "Person") out.set_last_person(m.name);
      else out.set_last_org(m.name);
      break;
    }
  }
}

}  // namespace kg::builtin
