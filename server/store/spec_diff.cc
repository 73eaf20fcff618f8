#include "server/store/spec_diff.h"

#include <map>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

namespace orchard::store {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using json = nlohmann::json;

std::string Join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

json ParseOrText(const std::string& text) {
  if (text.empty()) return json::object();
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json(text) : j;
}

// The first differing key of two JSON values, as a path under `prefix`.
std::optional<std::string> JsonDifference(const json& a, const json& b, const std::string& prefix) {
  if (a == b) return std::nullopt;
  if (a.is_object() && b.is_object()) {
    std::map<std::string, int> keys;  // sorted, so the answer does not depend on order
    for (auto it = a.begin(); it != a.end(); ++it) keys[it.key()] = 0;
    for (auto it = b.begin(); it != b.end(); ++it) keys[it.key()] = 0;
    for (const auto& [k, _] : keys) {
      if (!a.contains(k) || !b.contains(k)) return Join(prefix, k);
      if (auto d = JsonDifference(a.at(k), b.at(k), Join(prefix, k))) return d;
    }
  }
  return prefix;
}

std::optional<std::string> MessageDifference(const Message& a, const Message& b,
                                             const std::string& prefix) {
  const auto* desc = a.GetDescriptor();
  const Reflection* ra = a.GetReflection();
  const Reflection* rb = b.GetReflection();
  for (int i = 0; i < desc->field_count(); ++i) {
    const FieldDescriptor* f = desc->field(i);
    const std::string path = Join(prefix, f->name());
    if (prefix.empty() && f->name() == "params_json") {
      if (auto d = JsonDifference(ParseOrText(ra->GetString(a, f)), ParseOrText(rb->GetString(b, f)),
                                  "params")) {
        return d;
      }
      continue;
    }
    // Maps (labels) are compared by LabelsDifference: reflection over a
    // map field syncs its repeated view, which is not safe on a const spec.
    if (f->is_map()) continue;
    if (f->is_repeated()) {
      // No other repeated field in a spec today; compare them whole.
      if (ra->FieldSize(a, f) != rb->FieldSize(b, f)) return path;
      continue;
    }
    // A oneof member or an optional field set on one side only differs
    // (split.subtasks vs split.chunk; max_failed_subtasks set or not).
    if (f->has_presence() && ra->HasField(a, f) != rb->HasField(b, f)) return path;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (auto d = MessageDifference(ra->GetMessage(a, f), rb->GetMessage(b, f), path)) {
          return d;
        }
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        if (ra->GetString(a, f) != rb->GetString(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        if (ra->GetInt32(a, f) != rb->GetInt32(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        if (ra->GetInt64(a, f) != rb->GetInt64(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        if (ra->GetUInt32(a, f) != rb->GetUInt32(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        if (ra->GetUInt64(a, f) != rb->GetUInt64(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        if (ra->GetBool(a, f) != rb->GetBool(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        if (ra->GetEnumValue(a, f) != rb->GetEnumValue(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        if (ra->GetDouble(a, f) != rb->GetDouble(b, f)) return path;
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        if (ra->GetFloat(a, f) != rb->GetFloat(b, f)) return path;
        break;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> FirstSpecDifference(const orchard::v1::TaskSpec& a,
                                               const orchard::v1::TaskSpec& b) {
  if (auto d = MessageDifference(a, b, "")) return d;
  // Labels, as a map, in key order.
  std::map<std::string, std::string> ma(a.labels().begin(), a.labels().end());
  std::map<std::string, std::string> mb(b.labels().begin(), b.labels().end());
  if (ma == mb) return std::nullopt;
  for (const auto& [k, v] : ma) {
    auto it = mb.find(k);
    if (it == mb.end() || it->second != v) return Join("labels", k);
  }
  for (const auto& [k, v] : mb) {
    if (ma.count(k) == 0) return Join("labels", k);
  }
  return std::string("labels");
}

}  // namespace orchard::store
