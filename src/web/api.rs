//! The device API (`/api/v1`, DESIGN §5): handlers read the request, call one function of
//! [`crate::seats`], and shape the answer.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::errors::ApiError;
use crate::app::App;
use crate::metrics;
use crate::seats::{self, ActivationRequest};

/// Routes of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/activations", web::post().to(create_activation))
            .route("/activations/{seat}", web::get().to(get_activation))
            .route(
                "/activations/{seat}/reissue",
                web::post().to(reissue_activation),
            )
            .route(
                "/activations/{seat}/return",
                web::post().to(return_activation),
            )
            .route("/keys/lookup", web::post().to(lookup_keys))
            .route("/openapi.json", web::get().to(get_openapi)),
    );
}

/// Body of `POST /api/v1/activations`.
#[derive(Debug, Deserialize)]
struct ActivationBody {
    key_file: String,
    device_id: String,
    user_name: String,
    #[serde(default)]
    device_info: Option<serde_json::Value>,
}

/// Body of `POST /api/v1/activations/{seat}/reissue`.
#[derive(Debug, Deserialize)]
struct ReissueBody {
    return_token: String,
    user_name: String,
}

/// Body of `POST /api/v1/activations/{seat}/return`.
#[derive(Debug, Deserialize)]
struct ReturnBody {
    return_token: String,
}

/// Body of `POST /api/v1/keys/lookup`.
#[derive(Debug, Deserialize)]
struct LookupBody {
    key_file: String,
    device_id: String,
}

async fn create_activation(
    app: web::Data<App>,
    body: web::Json<ActivationBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let body = body.into_inner();
    let request = ActivationRequest {
        key_file: body.key_file,
        device_id: body.device_id,
        user_name: body.user_name,
        device_info: body.device_info,
    };
    let result = web::block(move || seats::activate(&app, &request)).await?;
    metrics::count_activation(&result);
    let activation = result?;
    Ok(if activation.created {
        HttpResponse::Created().json(activation)
    } else {
        HttpResponse::Ok().json(activation)
    })
}

async fn get_activation(
    app: web::Data<App>,
    seat: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let seat = seat.into_inner();
    let status = web::block(move || seats::status(&app, &seat)).await??;
    Ok(HttpResponse::Ok().json(status))
}

async fn reissue_activation(
    app: web::Data<App>,
    seat: web::Path<String>,
    body: web::Json<ReissueBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let seat = seat.into_inner();
    let body = body.into_inner();
    let activation =
        web::block(move || seats::reissue(&app, &seat, &body.return_token, &body.user_name))
            .await??;
    Ok(HttpResponse::Ok().json(activation))
}

async fn return_activation(
    app: web::Data<App>,
    seat: web::Path<String>,
    body: web::Json<ReturnBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let seat = seat.into_inner();
    let body = body.into_inner();
    let status = web::block(move || seats::return_seat(&app, &seat, &body.return_token)).await??;
    Ok(HttpResponse::Ok().json(status))
}

async fn lookup_keys(
    app: web::Data<App>,
    body: web::Json<LookupBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let body = body.into_inner();
    let keys = web::block(move || seats::lookup(&app, &body.key_file, &body.device_id)).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "keys": keys })))
}

async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("openapi.json"))
}
