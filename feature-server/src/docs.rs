//! `/openapi.json` and the interactive `/docs` page. The page is plain
//! HTML and script served by the binary itself: it works without access to
//! a CDN, which clusters often lack.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::Limits;

/// The OpenAPI 3.1 document of this server: generated from the handlers
/// and their types ([`crate::api::ApiDoc`]), then completed with what
/// depends on the running server and what no single type says:
///
/// - the configured limits (`maxItems` of `features` and of each entity
///   column);
/// - `features` or `feature_service`: at least one (`anyOf`), and the
///   materialize window unless `disable_event_timestamp`;
/// - the responses every route may give besides its own: 401 (with
///   `WWW-Authenticate`), 403, 413, 500, 503 on the protected routes, 504
///   (the request timeout) on all;
/// - with auth on, the bearer scheme, required by every protected route.
pub fn openapi(limits: &Limits, auth: bool) -> Value {
    let mut doc = crate::api::ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    complete(&mut doc, limits, auth);
    doc
}

fn complete(doc: &mut Value, limits: &Limits, auth: bool) {
    let req = &mut doc["components"]["schemas"]["GetOnlineFeaturesRequest"];
    req["properties"]["features"]["maxItems"] = json!(limits.max_features);
    req["properties"]["entities"]["additionalProperties"]["maxItems"] = json!(limits.max_entities);
    req["anyOf"] = json!([
        {"required": ["features"], "properties": {"features": {"type": "array", "minItems": 1}}},
        {"required": ["feature_service"], "properties": {"feature_service": {"type": "string"}}},
    ]);
    // The window is required unless `disable_event_timestamp` ignores it.
    doc["components"]["schemas"]["MaterializeRequest"]["anyOf"] = json!([
        {"required": ["disable_event_timestamp"], "properties": {"disable_event_timestamp": {"const": true}}},
        {
            "required": ["start_ts", "end_ts"],
            "properties": {"start_ts": {"type": ["string", "number"]}, "end_ts": {"type": ["string", "number"]}},
        },
    ]);
    let error = |description: String| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}},
        })
    };
    let protected = [
        (
            "401",
            json!({
                "description": "The server authenticates (an `auth` section) and the bearer token is missing, \
                                invalid or expired",
                "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}},
            }),
        ),
        (
            "403",
            error("The caller may not do this (Feast's `FeastPermissionError`)".into()),
        ),
        (
            "413",
            error(format!(
                "The body is larger than the limit of {} bytes",
                limits.max_body_bytes
            )),
        ),
        (
            "500",
            error("An internal failure (the registry, the online store or, for `/push` to the offline store, the batch source failed)".into()),
        ),
        (
            "503",
            error(
                "The online store, the registry, the identity provider or (for `/push` to the offline store) \
                 the offline store's database cannot be reached now; the same request may succeed later"
                    .into(),
            ),
        ),
    ];
    let timeout = (
        "504",
        error(format!(
            "The request took longer than {} s",
            limits.request_timeout.as_secs_f64()
        )),
    );
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let open = crate::authz::OPEN.contains(&path.as_str());
            let Some(ops) = item.as_object_mut() else { continue };
            for op in ops.values_mut() {
                let Some(responses) = op["responses"].as_object_mut() else {
                    continue;
                };
                let common = if open { &protected[..0] } else { &protected[..] };
                for (code, resp) in common.iter().chain([&timeout]) {
                    responses.entry(*code).or_insert_with(|| resp.clone());
                }
                let mut by_code: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
                by_code.sort_by(|a, b| a.0.cmp(&b.0));
                *responses = by_code.into_iter().collect::<Map<String, Value>>();
                if auth && !open {
                    op["security"] = json!([{"bearer": []}]);
                }
            }
        }
    }
    if auth {
        doc["components"]["securitySchemes"] = json!({
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A Kubernetes service-account token or an OIDC access token, as the `auth` \
                                section of the server's configuration says",
            }
        });
    }
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
