//! The controller's state machine, one function per operation family. Each returns
//! the `case (state_q)` arms of its states; [`arms`] writes them in state order.
//!
//! Every state drives the outputs it needs and the next values of the registers it
//! changes; everything else keeps the defaults of [`defaults`] (nothing issued,
//! registers held).

/// The arms of every operation family, in state order, for lanes that take `columns`
/// input columns per cycle, with or without the vector-operation queue. With
/// `skip_blocks` (requantizers shared by several lanes), an element-wise operation
/// requantizes only the blocks of lanes that hold elements of its vector
/// (`act_last_sub`), and attention's output only the blocks of its first position
/// group (`deff_last_sub`).
pub fn arms(columns: usize, queue: bool, skip_blocks: bool) -> String {
    let finish = if queue { finish_queued() } else { finish() };
    // With the queue, an operation marked independent of the one before starts
    // without waiting for its writes.
    let take = if queue {
        take_operation().replace(
            "if (wr_hazard) state_d = S_DISPATCH;",
            "if (wr_hazard & ~indep_q) state_d = S_DISPATCH;",
        )
    } else {
        take_operation()
    };
    let skip = |arm: String, last: &str| {
        if skip_blocks {
            arm.replace(
                "if (sub_q == last_sub) begin",
                &format!("if (sub_q == {last}) begin"),
            )
        } else {
            arm
        }
    };
    [
        take,
        rom_self_test(),
        embedding(columns),
        if skip_blocks {
            matvec(columns)
                .replace("if (|last_sub) begin", "if (|mv_blocks) begin")
                .replace(
                    "if (sub_q == last_sub) begin",
                    "if (sub_q == mv_blocks) begin",
                )
        } else {
            matvec(columns)
        },
        skip(rmsnorm(), "act_last_sub"),
        skip(rope(), "act_last_sub"),
        kv_store(),
        skip(attention(), "deff_last_sub"),
        skip(add(), "act_last_sub"),
        swiglu(),
        sampler(),
        vector_dma(),
        kv_transfer(),
        finish,
    ]
    .concat()
}

/// Finish with the queue: an operation waiting in the queue starts right away (its
/// parameter row was read when it was queued), or one arriving now is taken as Idle
/// would take it.
fn finish_queued() -> String {
    let indent = " ".repeat(20);
    format!(
        "            S_FIN: begin
                done = 1'b1;
                state_d = S_IDLE;
                if (pend_v_q) begin
{queued}                    p_d = pend_pload_q ? params : pend_p_q;
                    pend_v_d = 1'b0;
                    state_d = S_DISPATCH;
                end else if (start) begin
{arriving}                    state_d = S_LOAD;
                end
            end
",
        queued = take_into("", "pend_", &indent),
        arriving = take_into("", "", &indent),
    )
}

/// The queue's next values before the states: the parameter row of an operation queued
/// last cycle arrives now.
pub fn queue_defaults() -> String {
    "        pend_pload_d = 1'b0;
        if (pend_pload_q) pend_p_d = params;
"
    .to_string()
}

/// Assignments that take an operation — kind, independence, register operands — into
/// `dst` registers (`""`: the running operation's, `"pend_"`: the queue entry's) from
/// `src` (`""`: the sequencer's ports, `"pend_"`: the queue entry).
fn take_into(dst: &str, src: &str, indent: &str) -> String {
    let q = if src.is_empty() { "" } else { "_q" };
    ["kind", "indep", "ra", "rb", "rc"]
        .iter()
        .map(|f| format!("{indent}{dst}{f}_d = {src}{f}{q};\n"))
        .collect()
}

/// After the states: an operation arriving while the controller is busy enters the
/// queue (the sequencer never starts one while it is full); what the sequencer sees.
pub fn queue_after_states() -> String {
    format!(
        "        if (start & (state_q != S_IDLE) & ((state_q != S_FIN) | pend_v_q)) begin
            pend_v_d = 1'b1;
{queued}            pend_pload_d = 1'b1;
        end
        if (start & (state_q == S_IDLE)) indep_d = indep;
        q_busy = (state_q != S_IDLE) | pend_v_q;
        q_full = pend_v_q;
        if (reset) pend_v_d = 1'b0;
",
        queued = take_into("pend_", "", &" ".repeat(12)),
    )
}

/// Outputs when nothing is issued, the phase of the current state, the RoPE angle and
/// sampler stream pipelines' defaults, broadcast buses, the ROM signature, the
/// sampler's exp stream.
pub fn defaults() -> String {
    "        busy = 1'b1;
        done = 1'b0;
        result = result_q;
        prow = prow_in;
        ar_ra0 = 0;
        ar_ra1 = 0;
        ar_wa = 0;
        wrom_addr = 0;
        qrom_addr = 0;
        grom_addr = 0;
        step_addr = ci_q[7:0];
        u_a = OPA_ZERO;
        u_b = OPB_ONE;
        u_cadd = 1'b0;
        u_acc = ACC_HOLD;
        u_rq = 1'b0;
        u_rqin = 1'b0;
        u_msel = MSEL_QROM;
        u_raw = RAW_NONE;
        u_am = 1'b0;
        u_amfirst = 1'b0;
        u_qload = 1'b0;
        u_c1 = 1'b0;
        u_slot = ci_q[11:0];
        u_score = 1'b0;
        u_sum = 1'b0;
        u_saddr = ci_q[13:0];
        u_tbase = ci_q << cfg_plg;
        act_mode = ACT_FIRST_N;
        act_n = 0;
        act_idx = 0;
        sub_en = 1'b0;
        sub = sub_q;
        arsel_lane = 8'(ci_q & lmask);
        grp4 = 6'(((ci_q << 2) & lmask) >> 2);
        bmult = bmult_q;
        bshift = bshift_q;
        tau = tau_q;
        dmaw = dmaw_q;
        h_pos = pos16;
        h_max_clear = 1'b0;
        h_combine = 1'b0;
        h_r_go = 1'b0;
        h_r_addr = ci_q[13:0];
        h_r_tbase = ci_q << cfg_plg;
        h_sum_clear = 1'b0;
        h_recip_go = 1'b0;
        score_mult = at_score_mult;
        score_shift = at_score_shift;
        radj = at_norm_adj;
        g = cj_q[7:0];
        kv_raddr = lbase_q + kvp_q + (20'(ci_q) >> cfg_plg);
        kv_rsel = ck_q[0];
        kv_rbank = 2'(ci_q & pmask);
        kv_beat = kvc_q;
        kv_waddr = lbase_q + kvp_q + (20'(ci_q) >> cfg_plg);
        kv_wplane = kvc_q[7:0];
        kv_wbank = 2'(ci_q & pmask);
        kv_we_k = 1'b0;
        kv_we_v = 1'b0;
        rb_seg_we = sv1_q;
        rb_seg = si1_q[3:0];
        rb_beat_we = 1'b0;
        rb_beat = rem_q[9:0];
        sc_we = cfg_sureg ? sv4_q : sv3_q;
        sc_idx = cfg_sureg ? si4_q : si3_q;
        sc_sin = sincos_sin;
        sc_cos = sincos_cos;
        dma_req = 1'b0;
        dma_we = 1'b0;
        dma_addr = ra_q + 64'(hoff_q);
        dma_wdata = wd_q;
        case (state_q)
            S_EMB_Q, S_EMB_L, S_MV, S_MV_RQ: phase = PH_MATVEC;
            S_KVS_RD, S_KVS_WT, S_KVS_WR, S_AT_Q, S_AT_P1, S_AT_MX: phase = PH_ATTENTION;
            S_AT_P2, S_AT_FIN, S_AT_RC, S_AT_OUT: phase = PH_SOFTMAX;
            S_RN_SQ, S_RN_RED, S_RN_WAIT, S_RN_RSQ, S_RN_SC: phase = PH_NORM;
            S_SC, S_ROPE_A, S_ROPE_B, S_ADD_S, S_SWI: phase = PH_ELEMENTWISE;
            S_SA_ARG, S_SA_AW, S_SA_EX, S_SA_NP, S_SA_NR, S_SA_NW, S_SA_DRAW, S_SA_COIN,
            S_SA_DP, S_SA_DW, S_SA_SC, S_LP_LOG: phase = PH_SAMPLING;
            S_DO_RD, S_DO_LT, S_DO_REQ, S_DI_REQ, S_DI_WR, S_KS_RD, S_KS_RG, S_KS_LT, S_KS_REQ,
            S_KS_NEXT, S_KL_REQ, S_KL_BW, S_KL_WR: phase = PH_DMA;
            default: phase = PH_NONE;
        endcase
"
    .to_string()
}

/// Pipelines that carry a valid bit default to empty; the scalar units' outputs feed
/// the broadcast buses, the ROM signature and the sampler's sums.
///
/// The broadcast bus carries read port 0, or the embedding's sign-extended weight
/// byte — unless the embedding writes `columns` elements per cycle, when each lane
/// group takes its column on its own bus (`bcw`) and the byte would be a 64-way select
/// from the weight ROM's output that nothing reads (on the ECP5 it was the routed
/// chip's critical path).
pub fn pipelines(columns: usize) -> String {
    let broadcast = if wide_embedding(columns).is_some() {
        "bc = arsel;"
    } else {
        "bc = bc_src_e_q == BC_WEIGHT ? {{8{wsel[7]}}, wsel} : arsel;"
    };
    "        bist_v_d = 1'b0;
        sv1_d = 1'b0;
        sv2_d = sv1_q;
        sv3_d = sv2_q;
        sv4_d = sv3_q;
        si2_d = si1_q;
        si3_d = si2_q;
        si4_d = si3_q;
        xv1_d = 1'b0;
        xv2_d = xv1_q;
        xv3_d = xv2_q;
        xv4_d = xv3_q;
        xv5_d = xv4_q;
        xv6_d = xv5_q;
        xv7_d = xv6_q;
        xe2_d = xe1_q;
        xe3_d = xe2_q;
        xe4_d = xe3_q;
        xe5_d = xe4_q;
        dx_d = dsx;
        rs_d = rsqrt_s;
        ph_d = mul_step_p;
        scan_v_d = 1'b0;
        scan_v2_d = scan_v_q;
        scan_i2_d = scan_i_q;
        scan_w_d = arsel;
        scan_v3_d = scan_v2_q;
        scan_i3_d = scan_i2_q;
        masked_d = masked_now;
        bc_src_e_d = BC_RD0;
        sig_m = 17'(swi_sig_mult);
        sig_s = swi_sig_shift;
        kv_woff = 0;
        sgrp = 8'((e_lead & lmask) >> cfg_slg);
        bcl = bc_src_e_q == BC_SIGMOID;
        x_d = mul_temp_p;
        // broadcast buses (E timing)
        BROADCAST
        bc2 = sexp_p;
        // ROM self-test signature: rotate left, xor the folded word
        if (bist_v_q) begin
            case (bist_src_q)
                BIST_WEIGHTS: sig_d = {sig_q[62:0], sig_q[63]} ^ fold_w;
                BIST_REQUANT: sig_d = {sig_q[62:0], sig_q[63]} ^ fold_q;
                default: sig_d = {sig_q[62:0], sig_q[63]} ^ fold_g;
            endcase
        end
        // sampler exp stream: accumulate weights, remember the target's z
        if (xv_tot) begin
            tot_d = tot_q + 32'(sexp_p);
        end
        if (xv_z & is_lp_q & (xe_z == rb_q[15:0])) begin
            zt_d = srq_y;
        end
"
    .replace("BROADCAST", broadcast)
}

/// Idle, Load (the parameter row arrives a cycle after its address), Dispatch on the
/// kind: each family's first state with its counters set.
fn take_operation() -> String {
    "            S_IDLE: begin
                busy = 1'b0;
                if (start) begin
                    kind_d = kind;
                    ra_d = ra;
                    rb_d = rb;
                    rc_d = rc;
                    state_d = S_LOAD;
                end
            end
            S_LOAD: begin
                p_d = params;
                state_d = S_DISPATCH;
            end
            S_DISPATCH: begin
                ci_d = 0;
                cj_d = 0;
                ck_d = 0;
                hoff_d = 0;
                result_d = 0;
                state_d = S_FIN;
                case (kind_q)
                    VK_BIST: begin
                        addr_d = 0;
                        sig_d = 0;
                        state_d = S_BIST_W;
                    end
                    VK_EMBED: state_d = S_EMB_Q;
                    VK_MATVEC: begin
                        addr_d = mv_rom_base;
                        state_d = S_MV;
                    end
                    VK_RMSNORM: begin
                        rem_d = rn_n;
                        state_d = S_RN_SQ;
                    end
                    VK_SINCOS: state_d = S_SC;
                    VK_ROPE: begin
                        rem_d = rope_n;
                        bshift_d = 14;
                        state_d = S_ROPE_A;
                    end
                    VK_KVSTORE: begin
                        lbase_d = rb_q[19:0];
                        kvc_d = 0;
                        kvp_d = 0;
                        state_d = S_KVS_RD;
                    end
                    VK_ATTN: begin
                        lbase_d = rb_q[19:0];
                        npg_d = (pos16 >> cfg_plg) + 1;
                        kvc_d = 0;
                        oc_d = 1'b0;
                        state_d = S_AT_Q;
                    end
                    VK_ADD: begin
                        rem_d = add_n;
                        bshift_d = 0;
                        state_d = S_ADD_S;
                    end
                    VK_SWIGLU: begin
                        bshift_d = swi_out_shift;
                        state_d = S_SWI;
                    end
                    VK_SEED: begin
                        rng_d = ra_q;
                        state_d = S_FIN;
                    end
                    VK_SAMPLE: begin
                        rem_d = sa_vocab;
                        is_lp_d = 1'b0;
                        itemp_d = ra_q[15:0];
                        tau_d = 0;
                        state_d = S_SA_ARG;
                    end
                    VK_LOGPROB: begin
                        rem_d = sa_vocab;
                        is_lp_d = 1'b1;
                        itemp_d = 256;
                        rb_d = ra_q;
                        state_d = S_SA_ARG;
                    end
                    VK_DMAOUT: state_d = S_DO_RD;
                    VK_DMAIN: state_d = S_DI_REQ;
                    VK_KVSAVE: begin
                        lbase_d = rb_q[19:0];
                        rem_d = 0;
                        kvc_d = 0;
                        kvp_d = 0;
                        if (|rc_q) state_d = S_KS_RD;
                    end
                    VK_KVLOAD: begin
                        lbase_d = rb_q[19:0];
                        rem_d = 0;
                        kvc_d = 0;
                        kvp_d = 0;
                        if (|rc_q) state_d = S_KL_REQ;
                    end
                    default: begin
                        result_d = 64'hffffffffffffffff;
                        state_d = S_FIN;
                    end
                endcase
                // an operation starts once the previous one's writes that it could
                // read before they land have landed
                if (wr_hazard) state_d = S_DISPATCH;
            end
"
    .to_string()
}

/// ROM self-test: every word of the weight, requantization and gain ROMs.
fn rom_self_test() -> String {
    "            S_BIST_W: begin
                wrom_addr = addr_q;
                bist_v_d = 1'b1;
                bist_src_d = BIST_WEIGHTS;
                addr_d = addr_q + 1;
                // the weight ROM, then the wide ROM (from address bit 23) if any
                if (addr_q == cfg_wdepth - 1 && |cfg_widedepth) begin
                    addr_d = 24'h800000;
                end else if (addr_q == cfg_wdepth - 1 || addr_q == 24'h800000 + cfg_widedepth - 1) begin
                    addr_d = 0;
                    state_d = S_BIST_Q;
                end
            end
            S_BIST_Q: begin
                qrom_addr = addr_q[15:0];
                bist_v_d = 1'b1;
                bist_src_d = BIST_REQUANT;
                addr_d = addr_q + 1;
                if (addr_q[15:0] == cfg_qdepth - 1) begin
                    addr_d = 0;
                    state_d = S_BIST_G;
                end
            end
            S_BIST_G: begin
                grom_addr = addr_q[15:0];
                bist_v_d = 1'b1;
                bist_src_d = BIST_GAINS;
                addr_d = addr_q + 1;
                if (addr_q[15:0] == cfg_gdepth - 1) state_d = S_BIST_END;
            end
            S_BIST_END: state_d = S_BIST_RES;
            S_BIST_RES: begin
                result_d = sig_q;
                state_d = S_FIN;
            end
"
    .to_string()
}

/// Embedding: the row of token `ra` (ROM address `rb`, requantization word `rc`) is
/// read through lane `ra % L` and written element by element (with several columns
/// per weight word, element `j` is column `j mod C` of word `rb + j / C`, which the
/// top level selects by the element index on `u_slot`).
fn embedding(columns: usize) -> String {
    let text = "            S_EMB_Q: begin
                qrom_addr = (rc_q[15:0] << cfg_sublg) | ((ra_q[15:0] & lmask) >> rlg);
                arsel_lane = 8'(ra_q[15:0] & lmask);
                ci_d = ci_q + 1;
                if (ci_q == 1) begin
                    bmult_d = 17'(qsel_m);
                    bshift_d = qsel_s;
                    ci_d = 0;
                    state_d = S_EMB_L;
                end
            end
            S_EMB_L: begin
                wrom_addr = rb_q[23:0] + 24'(ci_q);
                arsel_lane = 8'(ra_q[15:0] & lmask);
                bc_src_e_d = BC_WEIGHT;
                u_a = OPA_BC;
                u_b = OPB_ONE;
                u_rq = 1'b1;
                u_rqin = 1'b1;
                u_msel = MSEL_BCAST;
                act_mode = ACT_ONE;
                act_idx = 8'(ci_q & lmask);
                ar_wa = 12'(emb_out + (ci_q >> cfg_lg));
                ci_d = ci_q + 1;
                if (ci_q == emb_dim - 1) begin
                    state_d = S_FIN;
                end
            end
";
    if columns == 1 {
        return text.to_string();
    }
    if let Some(mode) = wide_embedding(columns) {
        // C elements per cycle: lanes ci .. ci + C − 1 (one lane group of the mode),
        // each from its column of the token's word (the top level's `bcw` buses).
        let clg = columns.trailing_zeros();
        return text
            .replace(
                "wrom_addr = rb_q[23:0] + 24'(ci_q);",
                &format!("wrom_addr = rb_q[23:0] + (24'(ci_q) >> {clg});"),
            )
            .replace(
                "act_mode = ACT_ONE;\n                act_idx = 8'(ci_q & lmask);",
                &format!("act_mode = {mode};\n                act_idx = 8'((ci_q & lmask) >> {clg});"),
            )
            .replace("ci_d = ci_q + 1;\n                if (ci_q == emb_dim - 1) begin",
                &format!("ci_d = ci_q + {columns};\n                if (ci_q + {columns} >= emb_dim) begin"));
    }
    text.replace(
        "wrom_addr = rb_q[23:0] + 24'(ci_q);",
        &format!(
            "wrom_addr = rb_q[23:0] + (24'(ci_q) >> {});",
            columns.trailing_zeros()
        ),
    )
}

/// The lane-group activation that covers `columns` consecutive lanes from a multiple
/// of `columns` — four lanes (`ACT_GROUP4`) or a sigmoid group of eight
/// (`ACT_SIG_GROUP`; every chip has eight sigmoid units) — when the embedding writes
/// `columns` elements per cycle.
pub fn wide_embedding(columns: usize) -> Option<&'static str> {
    match columns {
        4 => Some("ACT_GROUP4"),
        8 => Some("ACT_SIG_GROUP"),
        _ => None,
    }
}

/// Matrix-vector product: one input element per cycle to all lanes (with several
/// columns, one weight word of `C` elements: `ci` counts words, and column 0's element
/// is `ci·C`), a row group at a time, requantized at the group's last word.
fn matvec(columns: usize) -> String {
    let text = "            S_MV: begin
                ar_ra0 = 12'(mv_input + (ci_q >> cfg_lg));
                wrom_addr = addr_q;
                qrom_addr = (mv_requant_base + cj_q) << cfg_sublg;
                u_a = OPA_BC;
                u_b = OPB_W8;
                u_acc = ~|ci_q ? ACC_LOAD : ACC_ADD;
                u_rq = ci_q == mv_cols - 1;
                sub_en = 1'b1;
                sub = 0;
                act_n = 9'(lanes);
                ar_wa = 12'(mv_out + cj_q);
                addr_d = addr_q + 1;
                ci_d = ci_q + 1;
                if (ci_q == mv_cols - 1) begin
                    // the next row group starts at the next weight group boundary
                    addr_d = (addr_q | 24'(cfg_gmask)) + 1;
                    ci_d = 0;
                    if (|last_sub) begin
                        sub_d = 1;
                        state_d = S_MV_RQ;
                    end else begin
                        cj_d = cj_q + 1;
                        if (cj_q == mv_groups - 1) begin
                            state_d = S_FIN;
                        end
                    end
                end
            end
            S_MV_RQ: begin
                qrom_addr = ((mv_requant_base + cj_q) << cfg_sublg) | 16'(sub_q);
                u_rq = 1'b1;
                sub_en = 1'b1;
                act_n = 9'(lanes);
                ar_wa = 12'(mv_out + cj_q);
                sub_d = sub_q + 1;
                if (sub_q == last_sub) begin
                    sub_d = 0;
                    cj_d = cj_q + 1;
                    state_d = S_MV;
                    if (cj_q == mv_groups - 1) begin
                        state_d = S_FIN;
                    end
                end
            end
";
    if columns == 1 {
        return text.to_string();
    }
    let clg = columns.trailing_zeros();
    text.replacen(
        "                ar_ra0 = 12'(mv_input + (ci_q >> cfg_lg));\n",
        &format!(
            "                ar_ra0 = 12'(mv_input + ((ci_q << {clg}) >> cfg_lg));\n                arsel_lane = 8'((ci_q << {clg}) & lmask);\n"
        ),
        1,
    )
}

/// RMSNorm: sum of squares through the adder tree, rsqrt, scale by the gains.
/// The end of an element-wise state that writes `lanes` elements per chunk, one block
/// of requantizers per cycle (`sub`): after the last block the next chunk, in
/// `then` (or the same state) until the elements run out.
fn next_chunk(then: Option<&str>) -> String {
    let then = then.map_or(String::new(), |s| {
        format!("                    state_d = {s};\n")
    });
    format!(
        "                sub_en = 1'b1;
                sub_d = sub_q + 1;
                if (sub_q == last_sub) begin
                    sub_d = 0;
                    ci_d = ci_q + 1;
                    rem_d = rem_q - lanes;
{then}                    if (rem_q <= lanes) begin
                        state_d = S_FIN;
                    end
                end
            end
"
    )
}

fn rmsnorm() -> String {
    "            S_RN_SQ: begin
                ar_ra0 = 12'(rn_input + ci_q);
                u_a = OPA_RD0;
                u_b = OPB_RD0;
                u_acc = ~|ci_q ? ACC_LOAD : ACC_ADD;
                act_n = 9'(act_cnt);
                ci_d = ci_q + 1;
                rem_d = rem_q - lanes;
                if (rem_q <= lanes) state_d = S_RN_RED;
            end
            S_RN_RED: begin
                u_sum = 1'b1;
                state_d = S_RN_WAIT;
            end
            S_RN_WAIT: begin
                if (tree_valid) begin
                    ck_d = 0;
                    state_d = S_RN_RSQ;
                end
            end
            S_RN_RSQ: begin
                ck_d = ck_q + 1;
                if (ck_q == 1 + su_lat) begin
                    bmult_d = 17'(rsqrt_r);
                    bshift_d = rsqrt_shift + rn_shift_adj;
                    ci_d = 0;
                    rem_d = rn_n;
                    state_d = S_RN_SC;
                end
            end
            S_RN_SC: begin
                ar_ra0 = 12'(rn_input + ci_q);
                grom_addr = ((rn_gain_base + ci_q) << cfg_sublg) | 16'(sub_q);
                u_a = OPA_RD0;
                u_b = OPB_GAIN;
                u_rq = 1'b1;
                u_rqin = 1'b1;
                u_msel = MSEL_BCAST;
                act_n = 9'(act_cnt);
                ar_wa = 12'(rn_out + ci_q);
"
    .to_string()
        + &next_chunk(None)
}

/// RoPE: the angles of position `ra`, one pair per cycle into the rope registers;
/// then two micro-operations per slot (`v·cos`, then `± partner·sin`).
fn rope() -> String {
    "            S_SC: begin
                sv1_d = ci_q < sc_pairs;
                si1_d = ci_q[5:0];
                ci_d = ci_q + 1;
                if (ci_q == sc_pairs + 3 + su_lat) state_d = S_FIN;
            end
            S_ROPE_A: begin
                ar_ra0 = 12'(rope_slot + ci_q);
                u_a = OPA_RD0;
                u_b = OPB_COS;
                u_acc = ACC_LOAD;
                act_n = 9'(act_cnt);
                state_d = S_ROPE_B;
            end
            S_ROPE_B: begin
                // the first block adds partner·sin; the others requantize what it left
                ar_ra0 = 12'(rope_slot + ci_q);
                u_a = |sub_q ? OPA_ZERO : OPA_NBR;
                u_b = OPB_SIN;
                u_acc = |sub_q ? ACC_HOLD : ACC_ADD;
                u_rq = 1'b1;
                u_msel = MSEL_ONE;
                act_n = 9'(act_cnt);
                ar_wa = 12'(rope_slot + ci_q);
"
    .to_string()
        + &next_chunk(Some("S_ROPE_A"))
}

/// KV store: gather the key (then the value) row from its AR slots into the row
/// buffer, then write it at position `ra`, a plane at a time.
fn kv_store() -> String {
    "            S_KVS_RD: begin
                ar_ra0 = |ck_q ? 12'(kvs_value_slot + ci_q) : 12'(kvs_key_slot + ci_q);
                sv1_d = 1'b1;
                si1_d = ci_q[5:0];
                ci_d = ci_q + 1;
                if ((~|ck_q & (ci_q == kvs_key_segments - 1))
                        | (|ck_q & (ci_q == kvs_value_segments - 1)))
                    state_d = S_KVS_WT;
            end
            S_KVS_WT: state_d = S_KVS_WR;
            S_KVS_WR: begin
                kv_woff = |ck_q ? 8'(kvs_value_offset) : 8'(kvs_key_offset);
                kv_waddr = lbase_q + kvp_q + (20'(pos16) >> cfg_plg);
                kv_wbank = 2'(pos16 & pmask);
                kv_we_k = ~|ck_q;
                kv_we_v = |ck_q;
                kvc_d = kvc_q + 1;
                kvp_d = kvp_q + cfg_kvdepth;
                if (kvc_q == 10'(cfg_kvplanes) - 1) begin
                    kvc_d = 0;
                    kvp_d = 0;
                    ci_d = 0;
                    ck_d = 1;
                    state_d = |ck_q ? S_FIN : S_KVS_RD;
                end
            end
"
    .to_string()
}

/// Attention, per head group: load the query, scores (pass 1), the maxima, weights
/// and values (pass 2), reciprocals of the sums, the normalized output.
fn attention() -> String {
    "            S_AT_Q: begin
                // head pairs: the second head's query from the next slot, on port 1
                ar_ra0 = 12'(at_query + (cj_q << cfg_hpairs));
                ar_ra1 = 12'(at_query + (cj_q << cfg_hpairs) + 16'(cfg_hpairs));
                u_qload = 1'b1;
                act_n = 9'(lanes);
                h_max_clear = 1'b1;
                ci_d = 0;
                state_d = S_AT_P1;
            end
            S_AT_P1: begin
                kv_rsel = 1'b0;
                kv_raddr = lbase_q + 20'(ci_q);
                u_a = OPA_QREG;
                u_b = OPB_KV;
                u_acc = ACC_LOAD;
                u_score = 1'b1;
                act_n = 9'(lanes);
                ci_d = ci_q + 1;
                if (ci_q == npg_q - 1) begin
                    ck_d = 0;
                    state_d = S_AT_MX;
                end
            end
            S_AT_MX: begin
                // pass 1's last score is in its unit's maximum register 4 + alat + hlg
                // cycles after its issue (A at 2 + alat, the tree's level 0 a cycle
                // later, level hlg hlg cycles after that, then the register): the
                // maxima of the position groups combine in that cycle
                ck_d = ck_q + 1;
                if (ck_q == 3 + 16'(cfg_alat) + 16'(cfg_hlg)) begin
                    h_combine = 1'b1;
                    h_sum_clear = 1'b1;
                    ci_d = 0;
                    state_d = S_AT_P2;
                end
            end
            S_AT_P2: begin
                // the weight of the score read in ci_q meets its value read in
                // ci_q + 4 (+ 1 when the head units register s - max)
                h_r_go = ci_q < npg_q;
                kv_rsel = 1'b1;
                kv_raddr = lbase_q + (20'(ci_q) - 4 - 20'(cfg_hdreg));
                if (ci_q >= 4 + 16'(cfg_hdreg)) begin
                    u_a = OPA_PW;
                    u_b = OPB_KV;
                    u_acc = ci_q == 4 + 16'(cfg_hdreg) ? ACC_LOAD : ACC_ADD;
                    act_n = 9'(lanes);
                end
                ci_d = ci_q + 1;
                if (ci_q == npg_q + 3 + 16'(cfg_hdreg)) state_d = S_AT_FIN;
            end
            S_AT_FIN: begin
                u_acc = ACC_ADD_OTHER;
                act_n = 9'(lanes);
                ck_d = 0;
                state_d = S_AT_RC;
            end
            S_AT_RC: begin
                h_recip_go = ~|ck_q;
                ck_d = ck_q + 1;
                if (ck_q == 3) state_d = S_AT_OUT;
            end
            S_AT_OUT: begin
                u_rq = 1'b1;
                u_msel = MSEL_HEAD;
                u_c1 = oc_q;
                act_n = cfg_deff;
                ar_wa = 12'(at_out + (cj_q << cfg_hpairs) + 16'(oc_q));
                sub_en = 1'b1;
                sub_d = sub_q + 1;
                if (sub_q == last_sub) begin
                    sub_d = 0;
                    if (cfg_hpairs & ~oc_q) begin
                        // the pair's second head next
                        oc_d = 1'b1;
                    end else begin
                        oc_d = 1'b0;
                        cj_d = cj_q + 1;
                        // the next plane of the KV rows after the plane's last head group
                        kvc_d = kvc_q + 1;
                        if (kvc_q == 10'(cfg_kvgpp) - 1) begin
                            kvc_d = 0;
                            lbase_d = lbase_q + cfg_kvdepth;
                        end
                        state_d = S_AT_Q;
                        if (cj_q == 16'(cfg_ngroups) - 1) begin
                            state_d = S_FIN;
                        end
                    end
                end
            end
"
    .to_string()
}

/// Saturating add `x += y`.
fn add() -> String {
    "            S_ADD_S: begin
                ar_ra0 = 12'(add_x + ci_q);
                ar_ra1 = 12'(add_y + ci_q);
                u_a = OPA_RD0;
                u_b = OPB_ONE;
                u_cadd = 1'b1;
                u_rq = 1'b1;
                u_rqin = 1'b1;
                u_msel = MSEL_ONE;
                act_n = 9'(act_cnt);
                ar_wa = 12'(add_x + ci_q);
"
    .to_string()
        + &next_chunk(None)
}

/// SwiGLU: groups of S elements of `h1` stream through the S sigmoid units; their
/// latency (`cfg_siglat`, 3 or 4 cycles) later each lane of the group multiplies
/// `h1·σ(h1)·h3`.
fn swiglu() -> String {
    "            S_SWI: begin
                ar_ra0 = 12'(swi_h1 + (e_lead >> cfg_lg));
                bc_src_e_d = BC_SIGMOID;
                if (ci_q >= 16'(cfg_siglat)) begin
                    ar_ra1 = 12'(swi_h3 + (e_follow >> cfg_lg));
                    u_a = OPA_BC;
                    u_b = OPB_BC2;
                    u_rq = 1'b1;
                    u_rqin = 1'b1;
                    u_msel = MSEL_RD1;
                    act_mode = ACT_SIG_GROUP;
                    act_idx = 8'((e_follow & lmask) >> cfg_slg);
                    ar_wa = 12'(swi_out + (e_follow >> cfg_lg));
                end
                ci_d = ci_q + 1;
                if (ci_q == ((swi_n + smask) >> cfg_slg) + 16'(cfg_siglat) - 1) begin
                    state_d = S_FIN;
                end
            end
"
    .to_string()
}

/// Sampling and log-probabilities: the argmax; for a temperature, the exp2 weights,
/// the nucleus (binary search for the largest threshold whose mass exceeds top-p),
/// the draw (a coin, per-slot sums through the tree, a scan of the slot where the
/// running sum passes the coin); or the target's log-probability.
fn sampler() -> String {
    [sampler_argmax_and_weights(), sampler_nucleus_and_draw()].concat()
}

fn sampler_argmax_and_weights() -> String {
    "            S_SA_ARG: begin
                ar_ra0 = 12'(sa_logits + ci_q);
                u_am = 1'b1;
                u_amfirst = ~|ci_q;
                act_n = 9'(act_cnt);
                ci_d = ci_q + 1;
                rem_d = rem_q - lanes;
                if (rem_q <= lanes) begin
                    ck_d = 0;
                    state_d = S_SA_AW;
                end
            end
            S_SA_AW: begin
                ck_d = ck_q + 1;
                if (ck_q == 16'(cfg_lg) + 3 + 16'(cfg_elat)) begin
                    mx_d = am_val;
                    ci_d = 0;
                    tot_d = 0;
                    state_d = S_SA_EX;
                    if (~is_lp_q & ~|itemp_q) begin
                        result_d = 64'(am_idx);
                        state_d = S_FIN;
                    end
                end
            end
            S_SA_EX: begin
                ar_ra0 = 12'(sa_logits + (e_lead >> cfg_lg));
                xv1_d = ci_q < sa_vocab;
                xe1_d = ci_q;
                if ((ci_q >= 5 + su_lat) & ~is_lp_q & (ci_q - 5 - su_lat < sa_vocab)) begin
                    u_raw = RAW_BC2;
                    act_mode = ACT_ONE;
                    act_idx = 8'((ci_q - 16'd5 - su_lat) & lmask);
                    ar_wa = 12'(sa_weights + ((ci_q - 16'd5 - su_lat) >> cfg_lg));
                end
                ci_d = ci_q + 1;
                if (ci_q == sa_vocab + 6 + su_lat + 16'(cfg_wlat)) begin
                    ck_d = 0;
                    mass_d = tot_q;
                    tau_d = 0;
                    if (is_lp_q) begin
                        state_d = S_LP_LOG;
                    end else if (|rb_q[15:0]) begin
                        target_d = mul_topp_p[47:16];
                        ck_d = 15;
                        ci_d = 0;
                        rem_d = sa_vocab;
                        state_d = S_SA_NP;
                    end else begin
                        state_d = S_SA_DRAW;
                    end
                end
            end
            S_LP_LOG: begin
                ck_d = ck_q + 1;
                if (ck_q == 2) begin
                    result_d = {{48{zt_q[15]}}, zt_q} + 15360 - 64'(slog_log2);
                    state_d = S_FIN;
                end
            end
"
    .to_string()
}

fn sampler_nucleus_and_draw() -> String {
    "            S_SA_NP: begin
                tau = tau_q | (16'(1) << ck_q);
                ar_ra0 = 12'(sa_weights + ci_q);
                u_a = OPA_RD0U;
                u_b = OPB_MASK;
                u_acc = ~|ci_q ? ACC_LOAD : ACC_ADD;
                act_n = 9'(act_cnt);
                ci_d = ci_q + 1;
                rem_d = rem_q - lanes;
                if (rem_q <= lanes) state_d = S_SA_NR;
            end
            S_SA_NR: begin
                tau = tau_q | (16'(1) << ck_q);
                u_sum = 1'b1;
                state_d = S_SA_NW;
            end
            S_SA_NW: begin
                tau = tau_q | (16'(1) << ck_q);
                if (tree_valid) begin
                    if (tree_top[31:0] > target_q) begin
                        tau_d = tau_q | (16'(1) << ck_q);
                        mass_d = tree_top[31:0];
                    end
                    ci_d = 0;
                    rem_d = sa_vocab;
                    ck_d = ck_q - 1;
                    state_d = ~|ck_q ? S_SA_DRAW : S_SA_NP;
                end
            end
            S_SA_DRAW: begin
                rng_d = rng_next;
                state_d = S_SA_COIN;
            end
            S_SA_COIN: begin
                rdraw_d = coin_q;
                cum_d = 0;
                found_d = 1'b0;
                arrivals_d = 0;
                ci_d = 0;
                rem_d = sa_vocab;
                state_d = S_SA_DP;
            end
            S_SA_DP: begin
                ar_ra0 = 12'(sa_weights + ci_q);
                u_a = OPA_RD0U;
                u_b = OPB_MASK;
                u_acc = ACC_LOAD;
                u_sum = 1'b1;
                act_n = 9'(act_cnt);
                ci_d = ci_q + 1;
                rem_d = rem_q - lanes;
                if (rem_q <= lanes) state_d = S_SA_DW;
            end
            S_SA_DW: begin
                if (arrivals_q == ((sa_vocab + lmask) >> cfg_lg)) begin
                    ci_d = 0;
                    if (~found_q) fslot_d = 12'(((17'(sa_vocab) + 17'(lmask)) >> cfg_lg) - 17'd1);
                    state_d = S_SA_SC;
                end
            end
            S_SA_SC: begin
                ar_ra0 = 12'(sa_weights + 16'(fslot_q));
                scan_v_d = 1'b1;
                scan_i_d = ci_q;
                ci_d = ci_q + 1;
                if (scan_m_v) begin
                    cum_d = cum_q + masked_q;
                    if ((rdraw_q < cum_q + masked_q) | (scan_m_i == lmask)) begin
                        result_d = (64'(fslot_q) << cfg_lg) + 64'(scan_m_i);
                        state_d = S_FIN;
                    end
                end
            end
"
    .to_string()
}

/// A vector to host memory (four int16 per 64-bit beat), or from it.
fn vector_dma() -> String {
    "            S_DO_RD: begin
                ar_ra0 = 12'(dv_slot + ((ci_q << 2) >> cfg_lg));
                state_d = S_DO_LT;
            end
            S_DO_LT: begin
                wd_d = dma4;
                state_d = S_DO_REQ;
            end
            S_DO_REQ: begin
                dma_req = 1'b1;
                dma_we = 1'b1;
                dma_addr = ra_q + (64'(ci_q) << 3);
                if (dma_ack) begin
                    ci_d = ci_q + 1;
                    state_d = S_DO_RD;
                    if (dma_err) begin
                        result_d = 1;
                        state_d = S_FIN;
                    end else if (ci_q == ((dv_n + 3) >> 2) - 1) begin
                        state_d = S_FIN;
                    end
                end
            end
            S_DI_REQ: begin
                dma_req = 1'b1;
                dma_addr = ra_q + (64'(ci_q) << 3);
                if (dma_ack) begin
                    dmaw_d = dma_rdata;
                    state_d = S_DI_WR;
                    if (dma_err) begin
                        result_d = 1;
                        state_d = S_FIN;
                    end
                end
            end
            S_DI_WR: begin
                u_raw = RAW_DMA;
                act_mode = ACT_GROUP4;
                act_idx = 8'(((ci_q << 2) & lmask) >> 2);
                ar_wa = 12'(dv_slot + ((ci_q << 2) >> cfg_lg));
                ci_d = ci_q + 1;
                state_d = S_DI_REQ;
                if (ci_q == ((dv_n + 3) >> 2) - 1) begin
                    state_d = S_FIN;
                end
            end
"
    .to_string()
}

/// KV rows of a context to host memory and back: per layer, per position, the key
/// row then the value row, a beat at a time (each plane's word in turn); a restored
/// row is written a plane at a time.
fn kv_transfer() -> String {
    "            // the row's read, then its beat registered beside the bank (kv_beat_data)
            S_KS_RD: state_d = S_KS_RG;
            S_KS_RG: state_d = S_KS_LT;
            S_KS_LT: begin
                wd_d = kv_beat_data;
                state_d = S_KS_REQ;
            end
            S_KS_REQ: begin
                dma_req = 1'b1;
                dma_we = 1'b1;
                if (dma_ack) begin
                    hoff_d = hoff_q + 8;
                    rem_d = rem_q + 1;
                    kvc_d = kvc_q + 1;
                    if (kvc_q == cfg_kvbpw - 1) begin
                        kvc_d = 0;
                        kvp_d = kvp_q + cfg_kvdepth;
                    end
                    // Through KS_RD: the beat select is registered beside the row's
                    // read, so it needs a cycle to follow rem to the next beat.
                    state_d = S_KS_RD;
                    if (dma_err) begin
                        result_d = 1;
                        state_d = S_FIN;
                    end else if (rem_q == 16'(cfg_kvbeats) - 1) begin
                        rem_d = 0;
                        kvc_d = 0;
                        kvp_d = 0;
                        state_d = S_KS_NEXT;
                    end
                end
            end
            S_KS_NEXT: begin
                state_d = S_KS_RD;
"
    .to_string()
        + &next_row(16)
        + "            end
            S_KL_REQ: begin
                dma_req = 1'b1;
                if (dma_ack) begin
                    dmaw_d = dma_rdata;
                    hoff_d = hoff_q + 8;
                    state_d = S_KL_BW;
                    if (dma_err) begin
                        result_d = 1;
                        state_d = S_FIN;
                    end
                end
            end
            S_KL_BW: begin
                rb_beat_we = 1'b1;
                rem_d = rem_q + 1;
                state_d = S_KL_REQ;
                if (rem_q == 16'(cfg_kvbeats) - 1) begin
                    rem_d = 0;
                    state_d = S_KL_WR;
                end
            end
            S_KL_WR: begin
                kv_we_k = ~|ck_q;
                kv_we_v = |ck_q;
                kvc_d = kvc_q + 1;
                kvp_d = kvp_q + cfg_kvdepth;
                if (kvc_q == 10'(cfg_kvplanes) - 1) begin
                    kvc_d = 0;
                    kvp_d = 0;
                    state_d = S_KL_REQ;
" + &next_row(20)
        + "                end
            end
"
}

/// After a key row (`ck` 0) comes its value row; after both, the next position; after
/// the context's last position, the next layer: the step of a KV transfer, indented by
/// `indent` spaces.
fn next_row(indent: usize) -> String {
    let block = "ck_d = 1;
if (|ck_q) begin
    ck_d = 0;
    ci_d = ci_q + 1;
    if (ci_q == rc_q[15:0] - 1) begin
        ci_d = 0;
        cj_d = cj_q + 1;
        lbase_d = lbase_q + 20'(kt_rows_per_layer);
        if (cj_q == kt_layers - 1) state_d = S_FIN;
    end
end
";
    block
        .lines()
        .map(|l| format!("{}{l}\n", " ".repeat(indent)))
        .collect()
}

/// The end of every operation: done (the next one waits in dispatch for this one's
/// writes to land).
fn finish() -> String {
    "            S_FIN: begin
                done = 1'b1;
                state_d = S_IDLE;
            end
"
    .to_string()
}

/// After the state's arm: the draw's per-slot sums as they arrive from the tree,
/// tagged with their slot; reset.
pub fn after_states() -> String {
    "        if (tree_valid & ((state_q == S_SA_DP) | (state_q == S_SA_DW))) begin
            arrivals_d = arrivals_q + 1;
            if (~found_q) begin
                if (rdraw_q < cum_next) begin
                    found_d = 1'b1;
                    fslot_d = tree_tag[11:0];
                end else begin
                    cum_d = cum_next;
                end
            end
        end
        if (reset) begin
            state_d = S_IDLE;
            sub_d = 0;
            bist_v_d = 1'b0;
            sv1_d = 1'b0;
            xv1_d = 1'b0;
            scan_v_d = 1'b0;
            scan_v2_d = 1'b0;
            scan_v3_d = 1'b0;
        end
"
    .to_string()
}
