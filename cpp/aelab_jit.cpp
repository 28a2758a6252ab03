// aelab_jit.cpp — build a TorchScript module whose parameters are real, named
// module parameters (so PyTorch's named_parameters()/state_dict() see them) and
// whose methods are traced from aelab's own Rust forward code.
//
// The Rust side registers every parameter by its dotted name ("encoder.0.weight"
// becomes submodule encoder → submodule 0 → parameter weight), then traces each
// method through a callback. torch::jit::tracer::trace with `self` maps each
// registered parameter to a GetAttr in the graph, exactly as torch.jit.trace does
// for an nn.Module, so the saved file is an ordinary ScriptModule.
#include <torch/script.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <cstring>
#include <string>
#include <vector>

using torch::jit::IValue;
using torch::jit::Module;
using torch::jit::Stack;

namespace {
char* dup(const std::string& s) {
  char* r = static_cast<char*>(malloc(s.size() + 1));
  memcpy(r, s.c_str(), s.size() + 1);
  return r;
}

Module child_of(Module& parent, const std::string& name) {
  if (parent.hasattr(name)) return parent.attr(name).toModule();
  auto qn = parent.type()->name()->qualifiedName() + "_" + name;
  Module child(c10::QualifiedName(qn), parent._ivalue()->compilation_unit());
  child.register_attribute("training", c10::BoolType::get(), false);
  parent.register_module(name, child);
  return child;
}
}  // namespace

extern "C" {

typedef at::Tensor* (*aelab_trace_fn)(void* ctx, at::Tensor* input);

void aelab_free_str(char* s) { free(s); }

void* aelab_module_new(const char* name, char** err) {
  try {
    auto* m = new Module(c10::QualifiedName(std::string("__torch__.aelab.") + name),
                         std::make_shared<torch::jit::CompilationUnit>());
    m->register_attribute("training", c10::BoolType::get(), false);
    return m;
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return nullptr;
  }
}

void aelab_module_free(void* m) { delete static_cast<Module*>(m); }

int aelab_module_add_parameter(void* mp, const char* dotted, at::Tensor* t, char** err) {
  try {
    Module cur = *static_cast<Module*>(mp);
    std::string path(dotted);
    size_t start = 0, dot;
    while ((dot = path.find('.', start)) != std::string::npos) {
      cur = child_of(cur, path.substr(start, dot - start));
      start = dot + 1;
    }
    cur.register_parameter(path.substr(start), *t, /*is_buffer=*/false);
    return 0;
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return 1;
  }
}

// Trace `fn(ctx, input)` and add it to the module as method `method`.
int aelab_module_trace(void* mp, const char* method, at::Tensor* example, aelab_trace_fn fn,
                       void* ctx, char** err) {
  try {
    Module* m = static_cast<Module*>(mp);
    std::string failure;
    Stack inputs{IValue(*example)};
    auto traced = [&](Stack in) -> Stack {
      at::Tensor x = in.at(0).toTensor();
      at::Tensor* out = fn(ctx, &x);
      if (out == nullptr) throw std::runtime_error("the traced function failed");
      at::Tensor r = *out;
      delete out;
      return Stack{IValue(r)};
    };
    auto result = torch::jit::tracer::trace(
        inputs, traced, [](const torch::autograd::Variable&) { return std::string(); },
        /*strict=*/true, /*force_outplace=*/false, m, {"x"});
    auto graph = result.first->graph;
    auto fnc = m->_ivalue()->compilation_unit()->create_function(
        c10::QualifiedName(*m->type()->name(), method), graph);
    m->type()->addMethod(fnc);
    return 0;
  } catch (const std::exception& e) {
    torch::jit::tracer::abandon();
    *err = dup(e.what());
    return 1;
  }
}

int aelab_module_save(void* mp, const char* path, char** err) {
  try {
    static_cast<Module*>(mp)->save(path);
    return 0;
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return 1;
  }
}

// Names of the methods a saved module has (NUL-separated, ending with an empty name).
char* aelab_module_methods(const char* path, char** err) {
  try {
    Module m = torch::jit::load(path);
    std::string out;
    for (const auto& method : m.get_methods()) {
      out += method.name();
      out.push_back('\n');
    }
    return dup(out);
  } catch (const std::exception& e) {
    *err = dup(e.what());
    return nullptr;
  }
}
}
