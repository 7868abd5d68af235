//! The device API (`/api/v1`, DESIGN §5): handlers read the request, call one function of
//! [`crate::seats`], and shape the answer. The bodies are the device crate's
//! [`seatkeep_device::api`] types, the same the reference client sends and reads.

use actix_web::{HttpResponse, web};
use seatkeep_device::api::{
    ActivationAnswer, ActivationBody, LookupAnswer, LookupBody, ReissueBody, ReturnBody,
    SeatStatus, StoredKey,
};

use super::errors::ApiError;
use crate::app::App;
use crate::metrics;
use crate::seats::{self, Activation, ActivationRequest, SeatAuth};

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
            .route(
                "/activations/{seat}/packets",
                web::post().to(create_packets),
            )
            .route("/keys/lookup", web::post().to(lookup_keys))
            .route("/openapi.json", web::get().to(get_openapi)),
    );
}

fn activation_answer(activation: Activation) -> ActivationAnswer {
    ActivationAnswer {
        seat: activation.seat,
        device_key: activation.device_key,
        key_file: activation.key_file,
        state: activation.state.as_str().to_owned(),
        expires_at: activation.expires_at,
        return_token: activation.return_token,
        overage: activation.overage,
        generation: activation.generation,
    }
}

fn seat_status(status: seats::SeatStatus) -> SeatStatus {
    SeatStatus {
        seat: status.seat,
        state: status.state.as_str().to_owned(),
        license: status.license,
        device_id: status.device_id,
        generation: status.generation,
        updated_at: status.updated_at,
    }
}

fn stored_key(key: seats::StoredKey) -> StoredKey {
    StoredKey {
        seat: key.seat,
        device_key: key.device_key,
        generation: key.generation,
        user_name: key.user_name,
        license: key.license,
    }
}

/// Exactly one of `return_token` and `proof`.
fn seat_auth(return_token: Option<String>, proof: Option<String>) -> Result<SeatAuth, ApiError> {
    match (return_token, proof) {
        (Some(token), None) => Ok(SeatAuth::ReturnToken(token)),
        (None, Some(proof)) => Ok(SeatAuth::Proof(proof)),
        (None, None) => Err(ApiError::BadRequest(
            "send return_token (a seat without a device key) or proof (a seat with one)".into(),
        )),
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "send return_token or proof, not both".into(),
        )),
    }
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
        device_jwk: body.device_jwk,
    };
    let result = web::block(move || seats::activate(&app, &request)).await?;
    metrics::count_activation(&result);
    let activation = result?;
    Ok(if activation.created {
        HttpResponse::Created().json(activation_answer(activation))
    } else {
        HttpResponse::Ok().json(activation_answer(activation))
    })
}

async fn get_activation(
    app: web::Data<App>,
    seat: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let seat = seat.into_inner();
    let status = web::block(move || seats::status(&app, &seat)).await??;
    Ok(HttpResponse::Ok().json(seat_status(status)))
}

async fn reissue_activation(
    app: web::Data<App>,
    seat: web::Path<String>,
    body: web::Json<ReissueBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let seat = seat.into_inner();
    let body = body.into_inner();
    let auth = seat_auth(body.return_token, body.proof)?;
    let activation =
        web::block(move || seats::reissue(&app, &seat, &auth, &body.user_name)).await??;
    Ok(HttpResponse::Ok().json(activation_answer(activation)))
}

async fn return_activation(
    app: web::Data<App>,
    seat: web::Path<String>,
    body: web::Json<ReturnBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let seat = seat.into_inner();
    let body = body.into_inner();
    let auth = seat_auth(body.return_token, body.proof)?;
    let status = web::block(move || seats::return_seat(&app, &seat, &auth)).await??;
    Ok(HttpResponse::Ok().json(seat_status(status)))
}

/// A packet request (DESIGN §10.3): the body is the compact JWS itself, `application/jose`.
async fn create_packets(
    app: web::Data<App>,
    seat: web::Path<String>,
    request: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let jose = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/jose"));
    if !jose {
        return Err(ApiError::BadRequest(
            "Content-Type must be application/jose (the packet request's compact JWS)".into(),
        ));
    }
    let limit = seatkeep_device::meter::wire::MAX_PACKET_REQUEST_BYTES;
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?;
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the body must be a compact JWS (ASCII)".into()))?;
    let app = app.into_inner();
    let seat = seat.into_inner();
    let reply = web::block(move || crate::meter::request_packets(&app, &seat, &body)).await??;
    Ok(if reply.created {
        HttpResponse::Created().json(reply.answer)
    } else {
        HttpResponse::Ok().json(reply.answer)
    })
}

async fn lookup_keys(
    app: web::Data<App>,
    body: web::Json<LookupBody>,
) -> Result<HttpResponse, ApiError> {
    let app = app.into_inner();
    let body = body.into_inner();
    let keys =
        web::block(move || seats::lookup(&app, &body.key_file, &body.device_id, &body.user_name))
            .await??;
    Ok(HttpResponse::Ok().json(LookupAnswer {
        keys: keys.into_iter().map(stored_key).collect(),
    }))
}

async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("openapi.json"))
}
