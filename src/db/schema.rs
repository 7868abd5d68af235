//! Diesel table definitions, one for both backends (portable types only).
//! Written by hand to match `migrations/{sqlite,postgres}`; a test compares both.

diesel::table! {
    /// One row per license (`lic`), updated by renewals.
    licenses (id) {
        id -> Text,
        issuer -> Text,
        customer_id -> Text,
        customer_name -> Text,
        product_id -> Text,
        product_name -> Text,
        product_edition -> BigInt,
        model -> Text,
        seats -> BigInt,
        capacity -> BigInt,
        in_use -> BigInt,
        ceiling -> BigInt,
        seq -> BigInt,
        not_before -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
        reissue_limit -> BigInt,
        return_limit -> BigInt,
        overage_percent -> BigInt,
        admins -> Text,
        federation_url -> Nullable<Text>,
        channel -> Nullable<Text>,
        current_key_file -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        change_seq -> BigInt,
        exhaust_episode -> BigInt,
        federation_grace -> Nullable<BigInt>,
        federation_user_data -> Bool,
        meter_terms -> Nullable<Text>,
        meter_cap -> BigInt,
        meter_issued -> BigInt,
    }
}

diesel::table! {
    /// Every key file ever imported, raw.
    key_files (digest) {
        digest -> Text,
        license_id -> Text,
        seq -> BigInt,
        jti -> Text,
        kid -> Text,
        raw -> Text,
        imported_at -> BigInt,
        imported_by -> Text,
    }
}

diesel::table! {
    /// One row per (license, device).
    seats (id) {
        id -> Text,
        license_id -> Text,
        device_id -> Text,
        user_name -> Text,
        state -> Text,
        generation -> BigInt,
        cycle -> BigInt,
        device_key -> Text,
        return_token_hash -> Text,
        device_info -> Nullable<Text>,
        overage -> Bool,
        activated_at -> BigInt,
        updated_at -> BigInt,
        released_at -> Nullable<BigInt>,
        device_jwk -> Nullable<Text>,
        device_jkt -> Nullable<Text>,
        packet_seq -> BigInt,
        reported_last_seq -> BigInt,
        reported_used -> BigInt,
        meter_flag -> Nullable<Text>,
    }
}

diesel::table! {
    /// Append-only record of every change.
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        license_id -> Nullable<Text>,
        seat_id -> Nullable<Text>,
        detail -> Text,
        license_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Seats taken and freed per license and UTC day (the console's charts).
    seat_moves_daily (license_id, day) {
        license_id -> Text,
        day -> BigInt,
        taken -> BigInt,
        freed -> BigInt,
    }
}

diesel::table! {
    /// Units and packets issued per metered license and UTC day (the console's pool charts).
    meter_issued_daily (license_id, day) {
        license_id -> Text,
        day -> BigInt,
        units -> BigInt,
        packets -> BigInt,
    }
}

diesel::table! {
    /// Activations refused because seats were exhausted, counted per license and hour.
    refusal_counts (license_id, bucket) {
        license_id -> Text,
        bucket -> BigInt,
        refused -> BigInt,
        first_at -> BigInt,
        last_at -> BigInt,
    }
}

diesel::table! {
    /// Device proofs accepted, by seat and jti, so none is accepted twice (kept past the
    /// proofs' freshness window, then pruned).
    device_proofs (seat_id, jti) {
        seat_id -> Text,
        jti -> Text,
        used_at -> BigInt,
    }
}

diesel::table! {
    /// Console and CLI admin accounts.
    admins (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Small named values the server keeps (the clock's high-water mark).
    server_state (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    /// The email outbox: one row per notification, sent by the sender job.
    notifications (id) {
        id -> BigInt,
        kind -> Text,
        license_id -> Nullable<Text>,
        recipients -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        dedupe_key -> Text,
        state -> Text,
        attempts -> BigInt,
        created_at -> BigInt,
        next_attempt_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    /// Federation events (DESIGN §7), one per change of a license, never deleted.
    federation_events (license_id, seq) {
        license_id -> Text,
        seq -> BigInt,
        kind -> Text,
        at -> BigInt,
        seat_id -> Nullable<Text>,
        device_id -> Nullable<Text>,
        user_name -> Nullable<Text>,
        in_use -> BigInt,
        seats -> BigInt,
        overage -> Bool,
        key_file_seq -> BigInt,
        usage -> Nullable<Text>,
    }
}

diesel::table! {
    /// Per license: how far the provider acknowledged, the push lease and the backoff.
    federation_state (license_id) {
        license_id -> Text,
        acked_seq -> BigInt,
        acked_at -> Nullable<BigInt>,
        lease_owner -> Nullable<Text>,
        lease_until -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    /// Console sessions: the sha256 of the cookie value, never the value itself.
    console_sessions (id_hash) {
        id_hash -> Text,
        admin_id -> Text,
        csrf_token -> Text,
        created_at -> BigInt,
        last_seen -> BigInt,
    }
}

diesel::table! {
    /// Failed console logins, counted per user name and client address (throttling).
    login_failures (id) {
        id -> BigInt,
        username -> Text,
        client -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    /// Failed return tokens and device proofs, per seat (the lockout of `seats::lockout`).
    auth_failures (id) {
        id -> BigInt,
        seat_id -> Text,
        at -> BigInt,
    }
}

diesel::joinable!(key_files -> licenses (license_id));
diesel::joinable!(seats -> licenses (license_id));
diesel::joinable!(refusal_counts -> licenses (license_id));
diesel::joinable!(seat_moves_daily -> licenses (license_id));
diesel::joinable!(meter_issued_daily -> licenses (license_id));
diesel::joinable!(device_proofs -> seats (seat_id));
diesel::table! {
    /// Every packet issued (DESIGN §10.3), claims frozen at issue, token once signed.
    meter_packets (seat_id, device_jkt, seq) {
        seat_id -> Text,
        device_jkt -> Text,
        seq -> BigInt,
        request_jti -> Text,
        claims -> Text,
        amount -> BigInt,
        issued_at -> BigInt,
        token -> Nullable<Text>,
    }
}

diesel::table! {
    /// Every packet request answered, by (seat, jti): the idempotency record.
    packet_requests (seat_id, jti) {
        seat_id -> Text,
        jti -> Text,
        body_sha256 -> Text,
        packet_seqs -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Every offline exchange (DESIGN §11), by its request: the response is answered again.
    offline_exchanges (request_sha256) {
        request_sha256 -> Text,
        response -> Text,
        created_at -> BigInt,
        actor -> Text,
    }
}

diesel::joinable!(federation_events -> licenses (license_id));
diesel::joinable!(meter_packets -> seats (seat_id));
diesel::joinable!(packet_requests -> seats (seat_id));
diesel::joinable!(federation_state -> licenses (license_id));
diesel::joinable!(console_sessions -> admins (admin_id));
diesel::joinable!(auth_failures -> seats (seat_id));

diesel::allow_tables_to_appear_in_same_query!(
    licenses,
    key_files,
    seats,
    audit_log,
    refusal_counts,
    seat_moves_daily,
    meter_issued_daily,
    device_proofs,
    admins,
    server_state,
    notifications,
    federation_events,
    federation_state,
    console_sessions,
    login_failures,
    auth_failures,
    meter_packets,
    packet_requests,
    offline_exchanges,
);
