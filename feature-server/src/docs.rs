//! `/openapi.json` and the interactive `/docs` page. The page is plain
//! HTML and script served by the binary itself: it works without access to
//! a CDN, which clusters often lack.

use serde_json::Value;
use utoipa::OpenApi;

/// The OpenAPI 3.1 document, generated from the handlers and their types
/// ([`crate::api::ApiDoc`]).
pub fn openapi() -> Value {
    let mut doc = crate::api::ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// A small self-contained page that lists the operations from
/// `/openapi.json` and lets you send requests.
pub const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Larder feature server API</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
details{border:1px solid #ccc;border-radius:6px;margin:.6rem 0;padding:.4rem .8rem}
summary{cursor:pointer;font-weight:600}
code.m{display:inline-block;min-width:3.5rem;color:#fff;background:#2a6;border-radius:4px;padding:0 .4rem;margin-right:.5rem}
code.m.get{background:#26a}
textarea{width:100%;min-height:8rem;font-family:monospace}
pre{background:#f5f5f5;padding:.6rem;overflow:auto;max-height:24rem}
</style></head><body>
<h1>Larder feature server</h1>
<p>Feast 0.67-compatible API. Machine-readable description: <a href="openapi.json">openapi.json</a>.</p>
<div id="ops">Loading…</div>
<script>
let SPEC=null;
function resolve(schema){
  while(schema&&schema.$ref){schema=SPEC.components.schemas[schema.$ref.split("/").pop()];}
  return schema;
}
function example(schema){
  schema=resolve(schema);
  if(!schema||!schema.properties)return {};
  const o={};
  for(const [k,v] of Object.entries(schema.properties)){
    if(v.example!==undefined)o[k]=v.example;
    else if(v.default!==undefined)o[k]=v.default;
    else if((schema.required||[]).includes(k))o[k]=v.type==="object"?{}:v.type==="array"?[]:"";
  }
  return o;
}
fetch("openapi.json").then(r=>r.json()).then(spec=>{
  SPEC=spec;
  const ops=document.getElementById("ops");ops.textContent="";
  for(const [path,methods] of Object.entries(spec.paths)){
    for(const [method,op] of Object.entries(methods)){
      const d=document.createElement("details");
      const s=document.createElement("summary");
      s.innerHTML=`<code class="m ${method}">${method.toUpperCase()}</code>${path} — ${op.summary||""}`;
      d.appendChild(s);
      let ta=null;
      if(op.requestBody){
        ta=document.createElement("textarea");
        const sc=op.requestBody.content["application/json"].schema;
        ta.value=JSON.stringify(example(sc),null,2);
        d.appendChild(ta);
      }
      const b=document.createElement("button");b.textContent="Send";
      const out=document.createElement("pre");
      b.onclick=async()=>{
        const init={method:method.toUpperCase(),headers:{"content-type":"application/json"}};
        if(ta)init.body=ta.value;
        const t0=performance.now();
        const r=await fetch(path.replace(/^\//,""),init);
        const text=await r.text();
        let shown=text;try{shown=JSON.stringify(JSON.parse(text),null,2)}catch(e){}
        out.textContent=`${r.status} ${r.statusText} (${(performance.now()-t0).toFixed(1)} ms)\n\n${shown}`;
      };
      d.appendChild(b);d.appendChild(out);ops.appendChild(d);
    }
  }
});
</script></body></html>
"#;
