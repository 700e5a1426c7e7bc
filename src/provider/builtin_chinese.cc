// Rule-based extraction for Chinese prose: organisations by suffix, places by suffix
// and by the verbs that introduce them, people by surname + given name followed by a
// verb, title or punctuation; relations from the verb between two names.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "text/text.h"
#include "provider/builtin_rules.h"

namespace kg::builtin {
namespace {

using U32 = std::u32string;

U32 Decode(const std::string& s) {
  U32 out;
  for (size_t i = 0; i < s.size();) out.push_back(DecodeUtf8(s, i));
  return out;
}

std::string Encode(const U32& s, size_t b, size_t e) {
  std::string out;
  for (size_t i = b; i < e && i < s.size(); ++i) AppendUtf8(out, s[i]);
  return out;
}

const std::vector<U32> kOrgSuffix = {U"有限公司", U"公司", U"集团", U"大学", U"研究院", U"研究所", U"实验室",
                                     U"银行", U"基金会", U"协会", U"医院", U"学院", U"科技", U"工作室",
                                     U"出版社", U"委员会", U"中心", U"联盟", U"事务所", U"基金", U"资本"};
const std::vector<U32> kLocSuffix = {U"市", U"省", U"县", U"镇", U"港", U"州"};
// Words a place suffix also begins or ends that are no place: 市场 (market), 上市 (listing),
// 港股 (Hong Kong shares), 节省 (save), 城镇 (towns).
const std::vector<U32> kNotPlaceWords = {U"市场", U"市值", U"市民", U"市面", U"市盈", U"上市", U"股市", U"超市",
                                         U"门市", U"港股", U"港口", U"港元", U"港币", U"节省",
                                         U"省钱", U"省略", U"城镇", U"县城"};
// Industry words a company is named with after a two-character brand ("华岳重工", "松果医疗",
// "快马出行"): a name only when the brand stands at a word boundary.
const std::vector<U32> kIndustrySuffix = {
    U"医疗", U"电子", U"半导体", U"咨询", U"汽车", U"电池", U"出行", U"钢铁", U"矿业", U"重工", U"机械",
    U"证券", U"动力", U"水务", U"在线", U"创投", U"航天", U"生物", U"教育", U"物流", U"食品", U"医药",
    U"地产", U"能源", U"传媒", U"通信", U"网络", U"软件", U"化工", U"制药", U"保险", U"影业", U"农业",
    U"航空", U"电气", U"光电", U"材料", U"智能", U"数据", U"芯片", U"微电子", U"置业", U"建设", U"快递",
    U"冷链", U"乳业", U"酒业", U"纺织", U"环保", U"新能源", U"信息", U"游戏", U"视频", U"支付", U"银行"};
// Words inside company names that are not verbs or names there: "腾讯控股有限公司",
// "华为技术有限公司".
const std::vector<U32> kOrgInner = {U"控股", U"股份", U"技术", U"科技", U"集团", U"网络", U"信息", U"电子",
                                    U"国际", U"实业", U"有限", U"责任", U"发展", U"数据", U"智能", U"通信",
                                    U"软件", U"汽车", U"传媒", U"文化", U"医药", U"生物", U"能源", U"物流",
                                    U"航空", U"电器", U"互联网"};
// Words that negate the relation between two names: 未收购, 没有投资, 否认.
const std::vector<U32> kNegations = {U"未", U"没有", U"没", U"否认", U"不会", U"不是", U"并非", U"拒绝",
                                     U"无意", U"不再", U"放弃", U"从不"};
const std::vector<U32> kSpouseWords = {U"妻子", U"丈夫", U"夫人", U"太太"};
const std::vector<U32> kLocMarkers = {U"总部位于", U"位于", U"设在", U"出生于", U"生于", U"来自", U"落户", U"迁往",
                                      U"迁至", U"坐落于", U"移居", U"定居", U"迁居", U"住在", U"居住在"};
const std::vector<U32> kVerbs = {
    U"创立", U"创办", U"创建", U"成立", U"收购", U"并购", U"加入", U"位于", U"投资", U"注资", U"资助", U"合作",
    U"担任", U"出任", U"现任", U"领导", U"负责", U"毕业", U"出生", U"隶属", U"属于", U"任职", U"就职", U"工作",
    U"签署", U"竞争", U"建立", U"宣布", U"发布", U"推出", U"设立", U"设在", U"拥有", U"控股", U"来自", U"前往",
    U"离开", U"聘请", U"主持", U"参与", U"支持", U"完成", U"开设", U"管理", U"供应", U"提供", U"共同", U"落户",
    U"迁往", U"迁至", U"坐落", U"联合", U"表示", U"认为", U"指出", U"说", U"获得", U"带领", U"研发", U"开发",
    U"使用", U"开始", U"采用", U"购买", U"成为", U"进入", U"包括", U"以后", U"之后", U"以前", U"之前", U"访问",
    U"出席", U"参加", U"会见", U"发表", U"接受", U"透露", U"强调", U"介绍", U"否认",
    U"出售", U"扩大", U"设有", U"兼任", U"起诉", U"接任", U"移居", U"定居", U"迁居", U"住在", U"居住", U"领投", U"跟投", U"参投", U"辞去", U"卸任", U"任教", U"指控", U"包括"};
const std::vector<U32> kTitles = {U"博士", U"先生", U"女士", U"教授", U"院长", U"所长", U"主任", U"总裁",
                                  U"董事长", U"首席", U"创始人", U"工程师", U"研究员", U"经理", U"总监", U"科学家",
                                  U"负责人", U"执行官", U"技术官", U"财务官", U"员工", U"顾问", U"股东",
                                  U"妻子", U"丈夫", U"夫人", U"太太", U"校长", U"理事长"};
// Leading quantifiers are not part of a name: "一个机器人实验室" -> "机器人实验室".
const U32 kQuantifierStart = U"一两三几这那该每某";
const U32 kMeasureWords = U"个家所名座支位";
const U32 kStops = U"了的是在与和于由把被将对从向及并为也都就而或但其该这那此等给没、，。；：！？“”‘’（）《》 \t,.;:!?()\"'";
const U32 kSurnames =
    U"王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    U"钟谭陆汪范金廖贾夏韦付白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵钱严覃武戴莫孔汤";
const std::vector<U32> kCompoundSurnames = {U"欧阳", U"司马", U"诸葛", U"上官", U"东方", U"慕容"};

// Roles: the relation they name, and whether they are a leadership role, which never
// becomes part of a name and, after "是…的" or before a person, marks an organisation.
struct RoleWord {
  U32 word;
  const char* type;
  bool leadership;
};
const std::vector<RoleWord> kRoles = {
    {U"首席执行官", "CEO_OF", true}, {U"CEO", "CEO_OF", true}, {U"首席技术官", "CTO_OF", true},
    {U"首席财务官", "CFO_OF", true}, {U"首席运营官", "COO_OF", true}, {U"联合创始人", "FOUNDER_OF", true},
    {U"创始人", "FOUNDER_OF", true}, {U"董事长", "CHAIR_OF", true}, {U"总裁", "PRESIDENT_OF", true},
    {U"总经理", "DIRECTOR_OF", true}, {U"院长", "DIRECTOR_OF", true}, {U"所长", "DIRECTOR_OF", true},
    {U"主任", "DIRECTOR_OF", true}, {U"总监", "DIRECTOR_OF", true}, {U"负责人", "DIRECTOR_OF", true},
    {U"首席科学家", "CHIEF_SCIENTIST_OF", true}, {U"工程师", "WORKS_AT", false}, {U"研究员", "WORKS_AT", false},
    {U"教授", "WORKS_AT", false}, {U"员工", "WORKS_AT", false}, {U"科学家", "WORKS_AT", false},
    {U"子公司", "PART_OF", false}, {U"顾问", "ADVISES", false}, {U"股东", "INVESTED_IN", false},
    {U"校长", "PRESIDENT_OF", true}, {U"理事长", "CHAIR_OF", true}};

bool IsStop(char32_t c) { return kStops.find(c) != U32::npos; }
bool IsNameChar(char32_t c) {
  return IsHan(c) || (c < 0x80 && std::isalnum(static_cast<int>(c)));
}
bool At(const U32& s, size_t pos, const U32& w) { return s.compare(pos, w.size(), w) == 0; }
bool EndsAt(const U32& s, size_t pos, const U32& w) { return pos >= w.size() && At(s, pos - w.size(), w); }
bool VerbStartsAt(const U32& s, size_t pos) {
  return std::any_of(kVerbs.begin(), kVerbs.end(), [&](const U32& v) { return At(s, pos, v); });
}
bool VerbEndsAt(const U32& s, size_t pos) {
  return std::any_of(kVerbs.begin(), kVerbs.end(), [&](const U32& v) { return EndsAt(s, pos, v); });
}
bool Contains(const U32& s, const U32& w) { return s.find(w) != U32::npos; }
bool ContainsAny(const U32& s, std::initializer_list<const char32_t*> ws) {
  return std::any_of(ws.begin(), ws.end(), [&](const char32_t* w) { return Contains(s, w); });
}

struct Span {
  size_t b, e;
  std::string type;
  std::string name;  // set for a pronoun: the person it refers to
};

bool LeadershipRoleEndsAt(const U32& s, size_t pos);

// Scans back from `end` over name characters, stopping at particles, verbs and roles.
size_t ScanBack(const U32& s, size_t end, size_t max_len) {
  size_t pos = end;
  while (pos > 0 && end - pos < max_len) {
    char32_t c = s[pos - 1];
    if (IsStop(c) || !IsNameChar(c) || VerbEndsAt(s, pos) || LeadershipRoleEndsAt(s, pos)) break;
    --pos;
  }
  return pos;
}

bool LeadershipRoleStartsAt(const U32& s, size_t pos);

size_t ScanForward(const U32& s, size_t b, size_t max_len) {
  size_t pos = b;
  while (pos < s.size() && pos - b < max_len && !IsStop(s[pos]) && IsNameChar(s[pos]) && !VerbStartsAt(s, pos) &&
         !LeadershipRoleStartsAt(s, pos)) {
    ++pos;
  }
  return pos;
}

bool AnyEndsAt(const std::vector<U32>& words, const U32& s, size_t pos, size_t* len) {
  for (const auto& w : words) {
    if (EndsAt(s, pos, w)) {
      *len = w.size();
      return true;
    }
  }
  return false;
}

// The start of the company name ending at `end` (where its suffix begins): back over name
// characters and the words companies are named with (控股, 技术, ...); when what is left
// besides those words is shorter than two characters, once over 为 or 了 inside a name
// ("华为技术", "饿了么"), unless a verb ends there ("成为了", "创立了").
size_t ScanBackOrg(const U32& s, size_t end) {
  size_t pos = end, own = 0;
  bool passed = false;
  while (pos > 0 && end - pos < 12 && own < 7) {
    size_t len = 0;
    if (EndsAt(s, pos, U"公司")) break;  // "智慧农业公司禾丰科技": another name ends there
    if (AnyEndsAt(kOrgInner, s, pos, &len)) {
      pos -= len;
      continue;
    }
    char32_t c = s[pos - 1];
    if (!passed && own < 2 && (c == U'为' || c == U'了') && pos >= 2 && IsNameChar(s[pos - 2]) && !IsStop(s[pos - 2]) &&
        !VerbEndsAt(s, pos - 1) && !VerbEndsAt(s, pos)) {
      passed = true;
      --pos;
      ++own;
      continue;
    }
    if (IsStop(c) || !IsNameChar(c) || VerbEndsAt(s, pos) || LeadershipRoleEndsAt(s, pos)) break;
    --pos;
    ++own;
  }
  return pos;
}

bool Overlaps(const std::vector<Span>& spans, size_t b, size_t e) {
  return std::any_of(spans.begin(), spans.end(), [&](const Span& sp) { return b < sp.e && sp.b < e; });
}

// The role starting at `s[pos]`, longest first ("首席科学家" before "科学家").
const RoleWord* RoleWordAt(const U32& s, size_t pos) {
  static const U32 kFirst = [] {
    U32 out;
    for (const auto& r : kRoles) out.push_back(r.word.front());
    return out;
  }();
  if (pos >= s.size() || kFirst.find(s[pos]) == U32::npos) return nullptr;  // most characters
  const RoleWord* best = nullptr;
  for (const auto& r : kRoles) {
    if (At(s, pos, r.word) && (!best || r.word.size() > best->word.size())) best = &r;
  }
  return best;
}

const char* RoleAt(const U32& s, size_t pos, size_t* len) {
  const RoleWord* r = RoleWordAt(s, pos);
  if (!r) return nullptr;
  *len = r->word.size();
  return r->type;
}

bool LeadershipRoleEndsAt(const U32& s, size_t pos) {
  static const U32 kLast = [] {
    U32 out;
    for (const auto& r : kRoles) out.push_back(r.word.back());
    return out;
  }();
  if (pos == 0 || kLast.find(s[pos - 1]) == U32::npos) return false;  // most characters
  return std::any_of(kRoles.begin(), kRoles.end(),
                     [&](const RoleWord& r) { return r.leadership && EndsAt(s, pos, r.word); });
}

bool LeadershipRoleStartsAt(const U32& s, size_t pos) {
  const RoleWord* r = RoleWordAt(s, pos);
  return r && r->leadership;
}

bool SurnameAt(const U32& s, size_t pos) {
  if (pos >= s.size()) return false;
  return kSurnames.find(s[pos]) != U32::npos ||
         std::any_of(kCompoundSurnames.begin(), kCompoundSurnames.end(), [&](const U32& c) { return At(s, pos, c); });
}

}  // namespace

void ExtractChineseSentence(const std::string& sentence, Collector& out) {
  U32 s = Decode(sentence);
  std::vector<Span> spans;
  auto add = [&](size_t b, size_t e, const char* type) {
    if (e <= b || Overlaps(spans, b, e)) return;
    spans.push_back({b, e, type, ""});
  };
  // Organisations (longest suffix first wins: 有限公司 before 公司; containment drops 科技 in 科技公司).
  std::vector<Span> orgs;
  for (size_t i = 0; i < s.size(); ++i) {
    for (const auto& suf : kOrgSuffix) {
      if (!At(s, i, suf)) continue;
      size_t b = ScanBackOrg(s, i);
      if (b < i && kQuantifierStart.find(s[b]) != U32::npos) ++b;
      if (b < i && kMeasureWords.find(s[b]) != U32::npos) ++b;
      // "平台开发商帧跃科技": a trade noun ending in 商 (developer, supplier, operator) describes
      // the company after it and is no part of its name.
      for (const U32 trade : {U"开发商", U"供应商", U"运营商", U"制造商", U"服务商", U"经销商", U"零售商",
                              U"承包商", U"生产商", U"提供商", U"发行商", U"代理商"}) {
        size_t t = s.find(trade, b >= 2 ? b - 2 : 0);
        if (t != U32::npos && t + trade.size() > b && t + trade.size() + 2 <= i) b = t + trade.size();
      }
      if (b < i && s[b] == U'商' && VerbEndsAt(s, b)) ++b;
      // "云栖保险三家子公司": a count of companies ("三家", "两个") names none.
      bool counted = false;
      for (size_t q = b; q + 1 < i && !counted; ++q) {
        counted = U32(U"一二三四五六七八九十两几多").find(s[q]) != U32::npos && kMeasureWords.find(s[q + 1]) != U32::npos;
      }
      if (counted) break;
      if (i - b >= 2) orgs.push_back({b, i + suf.size(), "Organization", ""});
      break;
    }
  }
  for (size_t i = 2; i < s.size(); ++i) {
    for (const auto& ind : kIndustrySuffix) {
      if (!At(s, i, ind)) continue;
      size_t b = i - 2;
      bool brand = IsHan(s[b]) && IsHan(s[b + 1]) && !IsStop(s[b]) && !IsStop(s[b + 1]) && !VerbEndsAt(s, i) &&
                   !VerbEndsAt(s, b + 1) && !LeadershipRoleEndsAt(s, i);
      // Not after a verb: "供应功率芯片", "开发固态电池" name products.
      bool boundary = b == 0 || IsStop(s[b - 1]) || !IsNameChar(s[b - 1]) || LeadershipRoleEndsAt(s, b);
      if (brand && boundary) orgs.push_back({b, i + ind.size(), "Organization", ""});
      break;
    }
  }
  std::sort(orgs.begin(), orgs.end(), [](const Span& a, const Span& b) { return a.e - a.b > b.e - b.b; });
  for (const auto& o : orgs) {
    // "智慧农业公司禾丰科技": a description right before a name is not a name.
    bool described = EndsAt(s, o.e, U"公司") && std::any_of(orgs.begin(), orgs.end(), [&](const Span& n) {
      return n.b == o.e;
    });
    if (!described) add(o.b, o.e, "Organization");
  }
  // Places: after a marker verb, or by suffix.
  for (const auto& m : kLocMarkers) {
    for (size_t p = s.find(m); p != U32::npos; p = s.find(m, p + 1)) {
      size_t b = p + m.size();
      size_t e = ScanForward(s, b, 8);
      // A place has two characters at least: "设在成都" is 成都 although 都 is also a particle.
      if (e == b + 1 && e < s.size() && IsStop(s[e]) && IsHan(s[e])) e = ScanForward(s, e + 1, 7);
      if (e > b + 1) add(b, e, "Location");
    }
  }
  // "在西岭、北淮和东屿设有分公司": every place of the list.
  std::vector<std::pair<size_t, size_t>> branches;  // (position of 在, position of the verb)
  for (const U32 verb : {U"设有", U"开设", U"设立", U"建有"}) {
    for (size_t v = s.find(verb); v != U32::npos; v = s.find(verb, v + 1)) {
      size_t z = s.rfind(U'在', v);
      if (z == U32::npos || v - z > 20 || v - z < 3) continue;
      U32 list = s.substr(z + 1, v - z - 1);
      if (ContainsAny(list, {U"，", U"。"})) continue;
      size_t b = z + 1;
      bool all = true;
      std::vector<std::pair<size_t, size_t>> items;
      for (size_t i = z + 1; i <= v; ++i) {
        if (i == v || s[i] == U'、' || s[i] == U'和' || s[i] == U'及') {
          if (i - b < 2 || i - b > 4) all = false;
          items.emplace_back(b, i);
          b = i + 1;
        }
      }
      if (!all) continue;
      for (const auto& [ib, ie] : items) add(ib, ie, "Location");
      branches.emplace_back(z, v);
    }
  }
  std::vector<Span> places;
  for (size_t i = 1; i < s.size(); ++i) {
    for (const auto& suf : kLocSuffix) {
      if (!At(s, i, suf)) continue;
      if (std::any_of(kNotPlaceWords.begin(), kNotPlaceWords.end(), [&](const U32& w) {
            return (At(s, i, w) && w.find(suf) == 0) || (EndsAt(s, i + suf.size(), w) && w.find(suf) != 0);
          })) {
        continue;
      }
      size_t b = ScanBack(s, i, 5);
      if (i - b >= 1) places.push_back({b, i + suf.size(), "Location", ""});
    }
  }
  std::sort(places.begin(), places.end(), [](const Span& a, const Span& b) { return a.e - a.b > b.e - b.b; });
  for (const auto& p : places) add(p.b, p.e, "Location");
  // Names met earlier in the chunk, longest first.
  {
    std::vector<std::pair<U32, std::string>> known;
    for (const auto& [name, type] : out.Known()) {
      U32 n = Decode(name);
      if (n.size() >= 2 && std::all_of(n.begin(), n.end(), [](char32_t c) { return IsHan(c); })) {
        known.emplace_back(n, type);
      }
    }
    std::sort(known.begin(), known.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    for (const auto& [n, type] : known) {
      for (size_t p = s.find(n); p != U32::npos; p = s.find(n, p + 1)) add(p, p + n.size(), type.c_str());
    }
  }
  // Organisations without a suffix, named by the role after them: "张伟是华为的首席执行官"
  // ("是…的" before a role), "华为的创始人张伟", "华为董事长张伟" (a person right after the
  // role). "张伟董事长表示" names no organisation: no person follows the role.
  for (size_t p = 1; p < s.size(); ++p) {
    const RoleWord* r = RoleWordAt(s, p);
    // A subsidiary's parent is an organisation but not the holder of a role; an adviser's
    // client is as often a person.
    if (!r || std::string_view(r->type) == "PART_OF" || std::string_view(r->type) == "ADVISES") continue;
    // "首席科学家": 科学家 is the tail of a longer role, not a role after a name.
    if (std::any_of(kRoles.begin(), kRoles.end(), [&](const RoleWord& w) {
          return w.word.size() > r->word.size() && EndsAt(s, p + r->word.size(), w.word);
        })) {
      continue;
    }
    bool de = s[p - 1] == U'的';
    size_t e = de ? p - 1 : p;
    // Like ScanBack, but 为 may end the name ("华为"): it is a particle only further back.
    size_t b = e > 0 && s[e - 1] == U'为' ? ScanBack(s, e - 1, 7) : ScanBack(s, e, 8);
    if (e - b < 2 || (b > 0 && !IsStop(s[b - 1]) && !VerbEndsAt(s, b))) continue;
    if (e - b >= 3 && (s[b] == U'前' || s[b] == U'原')) ++b;  // "前百度工程师": a former employer
    // "这个实验室的负责人" points back, it names nothing; a suffix is the suffix rule's to judge.
    if (kQuantifierStart.find(s[b]) != U32::npos || (b > 0 && kQuantifierStart.find(s[b - 1]) != U32::npos)) continue;
    if (std::any_of(kOrgSuffix.begin(), kOrgSuffix.end(), [&](const U32& suf) { return EndsAt(s, e, suf); })) continue;
    bool copula = b > 0 && (s[b - 1] == U'是' || s[b - 1] == U'为' ||
                            ContainsAny(s.substr(b - std::min<size_t>(b, 2), std::min<size_t>(b, 2)),
                                        {U"担任", U"出任", U"现任"}));
    bool person_follows = SurnameAt(s, p + r->word.size());
    bool looks_like_person = SurnameAt(s, b) && e - b <= 3;
    if (de ? (copula || !looks_like_person) : (person_follows && !looks_like_person)) add(b, e, "Organization");
  }
  // "《澜城日报》": a newspaper or magazine is an organisation.
  for (size_t p = s.find(U'《'); p != U32::npos; p = s.find(U'《', p + 1)) {
    size_t q = s.find(U'》', p);
    if (q == U32::npos || q - p < 3 || q - p > 12) continue;
    if (s[q - 1] == U'报' || EndsAt(s, q, U"杂志") || EndsAt(s, q, U"周刊")) add(p + 1, q, "Organization");
  }
  // "一家名为云帆智能的初创企业": a name introduced as one.
  for (const U32 marker : {U"名为", U"名叫", U"叫做", U"称为"}) {
    for (size_t p = s.find(marker); p != U32::npos; p = s.find(marker, p + 1)) {
      size_t b = p + marker.size();
      size_t e = b;
      while (e < s.size() && e - b < 10 && IsNameChar(s[e]) && s[e] != U'的') ++e;
      if (e - b >= 2 && e < s.size() && s[e] == U'的') add(b, e, "Organization");
    }
  }
  // People.
  for (size_t i = 0; i < s.size(); ++i) {
    size_t slen = 0;
    for (const auto& cs : kCompoundSurnames) {
      if (At(s, i, cs)) slen = cs.size();
    }
    if (!slen && kSurnames.find(s[i]) != U32::npos) slen = 1;
    if (!slen || Overlaps(spans, i, i + 1)) continue;
    // After 担任 comes a position ("担任高级工程师"), not a person; 周二 and 周末 are days.
    if (EndsAt(s, i, U"担任") || EndsAt(s, i, U"出任") || EndsAt(s, i, U"现任") || VerbStartsAt(s, i)) continue;
    if (slen == 1 && i + 1 < s.size() && U32(U"一二三四五六七八九十日末").find(s[i + 1]) != U32::npos &&
        (i + 2 >= s.size() || !IsHan(s[i + 2]) || IsStop(s[i + 2]) || VerbStartsAt(s, i + 2))) {
      continue;
    }
    // Not a name: a title or role word ("董事长", "程" in "工程师"), or glued to a preceding word
    // other than a title, a verb or a name.
    auto starts_title = [&](size_t pos) {
      return std::any_of(kTitles.begin(), kTitles.end(), [&](const U32& t) { return At(s, pos, t); });
    };
    if (starts_title(i)) continue;
    if (i > 0 && IsHan(s[i - 1]) && !IsStop(s[i - 1]) && !VerbEndsAt(s, i) &&
        !std::any_of(kTitles.begin(), kTitles.end(), [&](const U32& t) { return EndsAt(s, i, t); }) &&
        !std::any_of(spans.begin(), spans.end(), [&](const Span& sp) { return sp.e == i; })) {
      continue;
    }
    for (size_t g : {size_t{2}, size_t{1}}) {
      size_t e = i + slen + g;
      if (e > s.size()) continue;
      bool ok = true;
      for (size_t k = i + slen; k < e && ok; ++k) {
        ok = IsHan(s[k]) && !IsStop(s[k]) && !VerbStartsAt(s, k) && s[k] != U'称' && s[k] != U'说';
      }
      if (!ok || Overlaps(spans, i, e)) continue;
      bool follow = e == s.size() || IsStop(s[e]) || VerbStartsAt(s, e) ||
                    ContainsAny(s.substr(e, 2), {U"曾在", U"曾经", U"曾任", U"曾就", U"已经", U"随后", U"后来"}) ||
                    (e < s.size() && (s[e] == U'称' || s[e] == U'说')) ||
                    std::any_of(kTitles.begin(), kTitles.end(), [&](const U32& t) { return At(s, e, t); });
      if (!follow) continue;
      add(i, e, "Person");
      i = e - 1;
      break;
    }
  }
  // A pronoun opening the sentence or a clause, before any name ("他创立了…", "随后，她加入了…"),
  // is the person of the previous sentence.
  if (!out.last_person().empty()) {
    for (size_t i = 0; i < s.size(); ++i) {
      if (Overlaps(spans, 0, i + 1)) break;
      if ((s[i] == U'他' || s[i] == U'她') && (i == 0 || s[i - 1] == U'，' || s[i - 1] == U',') &&
          (i + 1 >= s.size() || s[i + 1] != U'们')) {
        spans.push_back({i, i + 1, "Person", out.last_person()});
        break;
      }
    }
  }
  // "该公司…", "这家公司…", "公司…" opening the sentence is the organisation of the previous one.
  if (!out.last_org().empty()) {
    for (const U32 w : {U"该公司", U"这家公司", U"该集团", U"公司"}) {
      if (At(s, 0, w) && !Overlaps(spans, 0, w.size())) {
        spans.push_back({0, w.size(), "Organization", out.last_org()});
        break;
      }
    }
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.b < b.b; });

  std::vector<std::string> names;
  for (const auto& sp : spans) {
    names.push_back(sp.name.empty() ? Encode(s, sp.b, sp.e) : sp.name);
    out.AddEntity(names.back(), sp.type, 3, sentence);
  }
  for (const std::string type : {"Person", "Organization"}) {
    for (size_t k = 0; k < spans.size(); ++k) {
      if (spans[k].type != type) continue;
      if (type == "Person") out.set_last_person(names[k]);
      else out.set_last_org(names[k]);
      break;
    }
  }
  // "X由A于2019年创立": A founded X, whatever stands between (the nearest person before
  // the verb, or else the nearest name).
  for (size_t k = 0; k + 1 < spans.size(); ++k) {
    if (s.compare(spans[k].e, 1, U"由") != 0) continue;
    struct Passive {
      const char32_t* verb;
      const char* type;
    };
    static const Passive kPassive[] = {{U"创立", "FOUNDED"}, {U"创办", "FOUNDED"}, {U"创建", "FOUNDED"},
                                       {U"成立", "FOUNDED"}, {U"收购", "ACQUIRED"}, {U"投资", "INVESTED_IN"},
                                       {U"领导", "LEADS"}};
    size_t end = spans[k].e + 1;
    while (end < s.size() && end - spans[k].e < 30 && s[end] != U'，' && s[end] != U'。') ++end;
    for (const auto& pv : kPassive) {
      size_t v = s.find(pv.verb, spans[k].e + 1);
      if (v == U32::npos || v >= end) continue;
      size_t agent = spans.size();
      for (size_t j = k + 1; j < spans.size() && spans[j].e <= v; ++j) {
        if (agent == spans.size() || spans[j].type == "Person") agent = j;
      }
      U32 between = s.substr(spans[k].e, v - spans[k].e);
      if (agent < spans.size() &&
          !std::any_of(kNegations.begin(), kNegations.end(), [&](const U32& w) { return Contains(between, w); })) {
        out.AddRelation(names[agent], names[k], pv.type, sentence);
        // "由赵明远和孙佳怡共同创立": every person joined by 和, 与 or 、.
        for (size_t j = agent; j > k + 1 && spans[j - 1].type == spans[agent].type; --j) {
          U32 link = s.substr(spans[j - 1].e, spans[j].b - spans[j - 1].e);
          if (link != U"和" && link != U"与" && link != U"、" && link != U"及") break;
          out.AddRelation(names[j - 1], names[k], pv.type, sentence);
        }
      }
      break;
    }
  }
  // The relation between spans ai and bi read from the text between them; false if none.
  struct Rel {
    size_t s, d;
    std::string type;
  };
  std::vector<Rel> rels;
  auto relate = [&](size_t ai, size_t bi, const U32& gap) {
    auto emit = [&](size_t from, size_t to, const char* type) { rels.push_back({from, to, type}); };
    const Span& a = spans[ai];
    const Span& b = spans[bi];
    U32 after = s.substr(b.e, 8);
    U32 bare = gap;
    bare.erase(std::remove(bare.begin(), bare.end(), U'的'), bare.end());
    if (std::any_of(kNegations.begin(), kNegations.end(), [&](const U32& w) { return Contains(gap, w); })) return false;
    if (a.type == "Person" && b.type == "Person" &&
        std::any_of(kSpouseWords.begin(), kSpouseWords.end(), [&](const U32& w) { return EndsAt(gap, gap.size(), w); })) {
      emit(ai, bi, "MARRIED_TO");
      return true;
    }
    size_t rl = 0;
    if (a.type == "Organization" && b.type == "Person") {
      if (const char* role = RoleAt(bare, 0, &rl); role && rl == bare.size()) {
        emit(bi, ai, role);
        return true;
      }
    }
    // "出生于北淮的周国平": the person after 的 was born in the place.
    if (a.type == "Location" && b.type == "Person" && gap == U"的" &&
        (EndsAt(s, a.b, U"出生于") || EndsAt(s, a.b, U"生于"))) {
      emit(bi, ai, "BORN_IN");
      return true;
    }
    // "总部位于北淮的X": the organisation after 的 is located in the place.
    if (a.type == "Location" && b.type == "Organization" && gap == U"的" &&
        (EndsAt(s, a.b, U"总部位于") || EndsAt(s, a.b, U"总部设在"))) {
      emit(bi, ai, "LOCATED_IN");
      return true;
    }
    // "A旗下的B", "A旗下拥有B": B is part of A; "A控股的B": B is owned by A.
    if (a.type == "Organization" && b.type == "Organization") {
      if (At(gap, 0, U"旗下") && gap.size() <= 4 && (gap.size() == 2 || gap == U"旗下的" || gap == U"旗下拥有")) {
        emit(bi, ai, "PART_OF");
        return true;
      }
      if (gap == U"控股的" || gap == U"全资控股的") {
        emit(bi, ai, "OWNED_BY");
        return true;
      }
    }
    if (Contains(gap, U"被") && ContainsAny(after, {U"收购", U"并购"})) {
      emit(bi, ai, "ACQUIRED");
    } else if (ContainsAny(gap, {U"创立", U"创办", U"创建", U"成立"})) {
      emit(ai, bi, "FOUNDED");
    } else if (ContainsAny(gap, {U"收购", U"并购"})) {
      emit(ai, bi, "ACQUIRED");
    } else if (Contains(gap, U"对") && (At(after, 0, U"的收购") || At(after, 0, U"的并购"))) {
      emit(ai, bi, "ACQUIRED");  // "完成对B的收购"
    } else if (ContainsAny(gap, {U"位于", U"设在", U"落户", U"坐落于", U"迁往", U"迁至"})) {
      emit(ai, bi, "LOCATED_IN");
    } else if (ContainsAny(gap, {U"移居", U"定居", U"迁居", U"住在", U"居住在"})) {
      emit(ai, bi, "LIVES_IN");
    } else if (ContainsAny(gap, {U"出生于", U"生于"})) {
      emit(ai, bi, "BORN_IN");
    } else if (Contains(gap, U"毕业于")) {
      emit(ai, bi, "STUDIED_AT");
    } else if (ContainsAny(gap, {U"投资", U"注资", U"资助", U"领投", U"参投"})) {
      emit(ai, bi, "INVESTED_IN");
    } else if (ContainsAny(gap, {U"加入", U"任职于", U"就职于"})) {
      emit(ai, bi, "WORKS_AT");
    } else if (ContainsAny(gap, {U"隶属于", U"属于"}) ||
               (Contains(gap, U"是") && (At(after, 0, U"旗下") || At(after, 0, U"的子公司") || At(after, 0, U"子公司")))) {
      emit(ai, bi, "PART_OF");
    } else if (Contains(gap, U"起诉")) {
      emit(ai, bi, "SUED");
    } else if (ContainsAny(gap, {U"领导", U"负责", U"管理", U"带领"})) {
      emit(ai, bi, "LEADS");
    } else if (ContainsAny(gap, {U"供应", U"提供"}) ||
               (Contains(gap, U"向") && ContainsAny(after, {U"供应", U"提供"}))) {
      emit(ai, bi, "SUPPLIES");
    } else if (Contains(gap, U"由")) {
      return false;  // passive, read above
    } else if (Contains(gap, U"向") && ContainsAny(after, {U"投资", U"注资"})) {
      emit(ai, bi, "INVESTED_IN");
    } else if (ContainsAny(gap, {U"与", U"和", U"同"}) && gap.size() <= 4) {
      if (Contains(after, U"竞争")) emit(ai, bi, "COMPETES_WITH");
      else if (ContainsAny(after, {U"合作", U"签署", U"联合", U"结成"})) emit(ai, bi, "PARTNER_OF");
      else return false;
    } else if (ContainsAny(gap, {U"担任", U"出任", U"现任", U"兼任", U"是", U"为", U"辞去", U"卸任"}) && gap.size() <= 4) {
      size_t p = (!after.empty() && after[0] == U'的') ? 1 : 0;
      const char* role = RoleAt(after, p, &rl);
      if (!role) return false;
      emit(ai, bi, role);
    } else if (EndsAt(gap, gap.size(), U"在") && gap.size() <= 5 &&
               (At(after, 0, U"工作") || At(after, 0, U"任职") || At(after, 0, U"担任") || At(after, 0, U"就职") ||
                At(after, 0, U"任教"))) {
      emit(ai, bi, "WORKS_AT");
    } else {
      return false;
    }
    return true;
  };
  for (size_t k = 0; k + 1 < spans.size(); ++k) {
    U32 gap = s.substr(spans[k].e, spans[k + 1].b - spans[k].e);
    if (Contains(gap, U"。")) continue;
    size_t comma = gap.rfind(U'，');
    if (comma == U32::npos) {
      if (gap.size() <= 14) relate(k, k + 1, gap);
      continue;
    }
    // "赵明远创立了X，总部设在澜城" / "她毕业于东屿大学，此前曾在鼎盛咨询工作": a clause with no
    // name before its verb has the sentence's first name as its subject.
    U32 tail = gap.substr(comma + 1);
    if (k > 0 && tail.size() <= 12 && (spans[0].type == "Person" || spans[0].type == "Organization")) {
      relate(0, k + 1, tail);
    }
  }
  // "X在西岭、北淮和东屿设有分公司": X operates in each place of the list.
  for (const auto& [z, v] : branches) {
    size_t subject = spans.size();
    for (size_t k = 0; k < spans.size() && spans[k].e <= z; ++k) {
      if (spans[k].type == "Organization") subject = k;
    }
    if (subject == spans.size()) continue;
    for (size_t k = 0; k < spans.size(); ++k) {
      if (spans[k].b > z && spans[k].e <= v && spans[k].type == "Location") rels.push_back({subject, k, "OPERATES_IN"});
    }
  }
  // "由A领投，B、C跟投": every organisation before 领投, 跟投 or 参投 (or listed with one by 、,
  // 和, 及) invested in the organisation whose 融资 (funding round) the sentence reports: the
  // last other organisation before 融资.
  if (size_t f = s.find(U"融资"); f != U32::npos) {
    auto link_at = [&](size_t j) {
      U32 link = s.substr(spans[j].e, spans[j + 1].b - spans[j].e);
      return link == U"、" || link == U"和" || link == U"及";
    };
    std::vector<bool> investor(spans.size(), false);
    for (size_t j = spans.size(); j-- > 0;) {
      if (spans[j].type != "Organization") continue;
      investor[j] = At(s, spans[j].e, U"领投") || At(s, spans[j].e, U"跟投") || At(s, spans[j].e, U"参投") ||
                    (j + 1 < spans.size() && investor[j + 1] && link_at(j));
    }
    size_t target = spans.size();
    for (size_t j = 0; j < spans.size() && spans[j].e <= f; ++j) {
      if (spans[j].type == "Organization" && !investor[j]) target = j;
    }
    if (target < spans.size() &&
        !std::any_of(kNegations.begin(), kNegations.end(), [&](const U32& w) { return Contains(s, w); })) {
      for (size_t j = 0; j < spans.size(); ++j) {
        if (!investor[j]) continue;
        bool known = std::any_of(rels.begin(), rels.end(), [&](const Rel& r) {
          return r.s == j && r.d == target && r.type == "INVESTED_IN";
        });
        if (!known) rels.push_back({j, target, "INVESTED_IN"});
      }
    }
  }
  // "A旗下拥有B、C和D", "A投资了B和C": organisations and places listed by 、, 和 or 及 share the
  // relation of the list's first member.
  for (size_t k = 0; k + 1 < spans.size(); ++k) {
    if (spans[k].type == "Person" || spans[k + 1].type != spans[k].type || !spans[k + 1].name.empty()) continue;
    U32 link = s.substr(spans[k].e, spans[k + 1].b - spans[k].e);
    if (link != U"、" && link != U"和" && link != U"及") continue;
    const size_t n = rels.size();
    for (size_t r = 0; r < n; ++r) {
      const Rel x = rels[r];
      if (x.type == "PARTNER_OF" || x.type == "COMPETES_WITH") continue;
      Rel y = x;
      if (x.s == k && x.d != k + 1 && x.d < k) y.s = k + 1;
      else if (x.d == k && x.s != k + 1 && x.s < k) y.d = k + 1;
      else continue;
      bool known = std::any_of(rels.begin(), rels.end(), [&](const Rel& z) {
        return z.s == y.s && z.d == y.d && z.type == y.type;
      });
      if (!known) rels.push_back(y);
    }
  }
  // "李俊和妻子王蕾移居临溪": a person joined to the next by 和, 与 or 、 (with a spouse word or
  // not) shares the relations that person is the subject of.
  for (size_t k = 0; k + 1 < spans.size(); ++k) {
    if (spans[k].type != "Person" || spans[k + 1].type != "Person") continue;
    U32 link = s.substr(spans[k].e, spans[k + 1].b - spans[k].e);
    for (const auto& w : kSpouseWords) {
      if (link.size() > w.size() && EndsAt(link, link.size(), w)) link.resize(link.size() - w.size());
    }
    if (link != U"和" && link != U"与" && link != U"、" && link != U"及") continue;
    const size_t n = rels.size();
    for (size_t r = 0; r < n; ++r) {
      if (rels[r].s == k + 1 && rels[r].d != k && rels[r].type != "MARRIED_TO") rels.push_back({k, rels[r].d, rels[r].type});
    }
  }
  for (const auto& r : rels) out.AddRelation(names[r.s], names[r.d], r.type, sentence);
}

}  // namespace kg::builtin
