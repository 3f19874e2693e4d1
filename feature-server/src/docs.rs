//! `/openapi.json` and the interactive `/docs` page. The page is plain
//! HTML and script served by the binary itself: it works without access to
//! a CDN, which clusters often lack.

use serde_json::{Value, json};

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn error_responses() -> Value {
    json!({
        "400": {"description": "Invalid request (message as a JSON string)"},
        "404": {"description": "Unknown feature view or service (Feast error JSON, double-encoded)"},
        "413": {"description": "Body larger than the limit"},
        "422": {"description": "Body failed validation ({\"detail\": [...]})"}
    })
}

/// The OpenAPI 3.1 description of the routes.
pub fn openapi() -> Value {
    let df = json!({"type": "object", "additionalProperties": {"type": "array"}, "description": "Columnar table: column name → values"});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Larder feature server", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Feast 0.67-compatible online serving API"},
        "paths": {
            "/get-online-features": {"post": {
                "summary": "Read features for entity rows",
                "requestBody": body(json!({"type": "object", "required": ["entities"], "properties": {
                    "entities": {"type": "object", "additionalProperties": {"type": "array"}, "example": {"driver_id": [1001, 1002]}},
                    "features": {"type": "array", "items": {"type": "string"}, "example": ["driver_hourly_stats:conv_rate"]},
                    "feature_service": {"type": ["string", "null"]},
                    "full_feature_names": {"type": "boolean", "default": false},
                    "include_feature_view_version_metadata": {"type": "boolean", "default": false}}})),
                "responses": {"200": {"description": "Columns of values, statuses and event timestamps",
                    "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "metadata": {"type": "object", "properties": {"feature_names": {"type": "array", "items": {"type": "string"}}}},
                        "results": {"type": "array", "items": {"type": "object", "properties": {
                            "values": {"type": "array"},
                            "statuses": {"type": "array", "items": {"type": "string", "enum": ["PRESENT", "NOT_FOUND", "NULL_VALUE", "OUTSIDE_MAX_AGE", "INVALID"]}},
                            "event_timestamps": {"type": "array", "items": {"type": "string", "format": "date-time"}}}}}}}}}},
                    "400": error_responses()["400"], "404": error_responses()["404"], "413": error_responses()["413"], "422": error_responses()["422"]}}},
            "/push": {"post": {
                "summary": "Write rows through a push source",
                "requestBody": body(json!({"type": "object", "required": ["push_source_name", "df"], "properties": {
                    "push_source_name": {"type": "string"}, "df": df,
                    "to": {"type": "string", "enum": ["online", "offline", "online_and_offline"], "default": "online"},
                    "allow_registry_cache": {"type": "boolean", "default": true},
                    "transform_on_write": {"type": "boolean", "default": true}}})),
                "responses": {"200": {"description": "Written (empty body)"}, "501": {"description": "Offline writes are not available"}}}},
            "/write-to-online-store": {"post": {
                "summary": "Write rows of one feature view",
                "requestBody": body(json!({"type": "object", "required": ["feature_view_name", "df"], "properties": {
                    "feature_view_name": {"type": "string"}, "df": df,
                    "allow_registry_cache": {"type": "boolean", "default": true}}})),
                "responses": {"200": {"description": "Written (body null)"}}}},
            "/materialize": {"post": {
                "summary": "Materialize [start_ts, end_ts)",
                "parameters": [{"name": "async", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": body(json!({"type": "object", "properties": {
                    "start_ts": {"type": "string", "format": "date-time"}, "end_ts": {"type": "string", "format": "date-time"},
                    "feature_views": {"type": "array", "items": {"type": "string"}},
                    "disable_event_timestamp": {"type": "boolean", "default": false}}})),
                "responses": {"200": {"description": "Done (body null)"}, "202": {"description": "Accepted (async)"}}}},
            "/materialize-incremental": {"post": {
                "summary": "Materialize from each view's last run up to end_ts",
                "parameters": [{"name": "async", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": body(json!({"type": "object", "required": ["end_ts"], "properties": {
                    "end_ts": {"type": "string", "format": "date-time"},
                    "feature_views": {"type": "array", "items": {"type": "string"}}}})),
                "responses": {"200": {"description": "Done (body null)"}, "202": {"description": "Accepted (async)"}}}},
            "/health": {"get": {"summary": "200 when the registry answers, 503 otherwise", "responses": {"200": {"description": "Healthy"}, "503": {"description": "Registry unavailable"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}}
        }
    })
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
function example(schema){
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
