## Reference fits for negative binomial (NB2, NB1), Gamma (log link) and ordinal
## (cumulative logit / probit) mixed models.
##
## Run from the repository root:   Rscript tests/reference/r/families/fit_families.R
## Writes  tests/reference/data/{salamanders,owls,cake,wine}.csv   (from the R packages)
## and     tests/reference/families/<id>.json                      (one per fit)
##
## Self-contained (does not source the shared refs/common.R, but follows its JSON layout).
## Packages (Debian 12): r-base-core r-cran-lme4 r-cran-glmmtmb r-cran-ordinal
##   r-cran-jsonlite r-cran-numderiv r-cran-mass     (versions: VERSIONS.md beside this file)
##
## Besides the package fits, this script contains a small independent implementation of
## the marginal log-likelihood of a random-intercept GLMM / cumulative-link mixed model by
## adaptive Gauss-Hermite quadrature (AGHQ centred at the conditional mode, scaled by the
## curvature there; nAGQ = 1 is the Laplace approximation).  It is used to
##   * verify that the packages' log-likelihoods are the full ones (all constants), and
##     which curvature their Laplace approximation uses (observed vs Fisher/expected);
##   * give AGHQ (nAGQ = 7 and 30) reference fits for NB2 / NB1 / Gamma, which no packaged
##     R function provides (Stata's me* commands default to 7-point adaptive quadrature).

suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(ordinal)
  library(MASS)
  library(jsonlite)
  library(numDeriv)
})

.script_path <- function() {
  a <- commandArgs(FALSE)
  f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) normalizePath(f[1]) else normalizePath("tests/reference/r/families/fit_families.R")
}
HERE <- dirname(.script_path())                       # tests/reference/r/families
REF <- normalizePath(file.path(HERE, "..", ".."))     # tests/reference
DATA <- file.path(REF, "data")
RESULTS <- file.path(REF, "families")
dir.create(RESULTS, showWarnings = FALSE, recursive = TRUE)

pkgver <- function(p) as.character(packageVersion(p))
`%||%` <- function(a, b) if (is.null(a)) b else a
s17 <- function(x) formatC(x, digits = 17, format = "g")

## =====================================================================================
## 1. Data export (only files that do not exist yet are written; existing CSVs are never
##    overwritten) and loading with the documented factor codings.
## =====================================================================================
export_csv <- function(d, name) {
  f <- file.path(DATA, paste0(name, ".csv"))
  if (file.exists(f)) {
    old <- read.csv(f, stringsAsFactors = FALSE, check.names = FALSE)
    new <- read.csv(text = paste(capture.output(write.csv(d, row.names = FALSE)), collapse = "\n"),
                    stringsAsFactors = FALSE, check.names = FALSE)
    if (!isTRUE(all.equal(old, new, check.attributes = FALSE)))
      stop(sprintf("%s exists and differs from the package data; not overwriting", f))
    return(invisible(f))
  }
  write.csv(d, f, row.names = FALSE)
  invisible(f)
}

export_all <- function() {
  ## glmmTMB::Salamanders: repeated salamander counts at 23 sites
  S <- get(data("Salamanders", package = "glmmTMB", envir = environment()))
  S <- data.frame(site = as.character(S$site), site_id = as.integer(S$site),
                  mined = as.character(S$mined), mined_no = as.integer(S$mined == "no"),
                  spp = as.character(S$spp), sample = S$sample,
                  cover = S$cover, DOP = S$DOP, Wtemp = S$Wtemp, DOY = S$DOY,
                  count = S$count)
  export_csv(S, "salamanders")
  ## glmmTMB::Owls: begging calls of owl nestlings, 27 nests
  O <- get(data("Owls", package = "glmmTMB", envir = environment()))
  O <- data.frame(Nest = as.character(O$Nest), nest_id = as.integer(O$Nest),
                  FoodTreatment = as.character(O$FoodTreatment),
                  satiated = as.integer(O$FoodTreatment == "Satiated"),
                  SexParent = as.character(O$SexParent),
                  male = as.integer(O$SexParent == "Male"),
                  ArrivalTime = O$ArrivalTime, BroodSize = O$BroodSize,
                  SiblingNegotiation = O$SiblingNegotiation)
  export_csv(O, "owls")
  ## lme4::cake: breakage angle of chocolate cakes; 3 recipes x 15 replicates x 6 temps
  C <- lme4::cake
  C <- data.frame(recipe = as.character(C$recipe),
                  replicate = as.integer(as.character(C$replicate)),
                  batch = (as.integer(C$recipe) - 1L) * 15L + as.integer(as.character(C$replicate)),
                  temp = as.integer(as.character(C$temperature)),
                  temp_c = (as.integer(as.character(C$temperature)) - 200) / 10,
                  angle = C$angle)
  stopifnot(all(C$temp == lme4::cake$temp))
  export_csv(C, "cake")
  ## ordinal::wine: bitterness rating of wine, 9 judges x 8 bottles
  W <- get(data("wine", package = "ordinal", envir = environment()))
  W <- data.frame(judge = as.integer(as.character(W$judge)),
                  bottle = as.integer(as.character(W$bottle)),
                  temp = as.character(W$temp), warm = as.integer(W$temp == "warm"),
                  contact = as.character(W$contact), contact_yes = as.integer(W$contact == "yes"),
                  rating = as.integer(as.character(W$rating)), response = W$response)
  export_csv(W, "wine")
}

load_data <- function(name) {
  d <- read.csv(file.path(DATA, paste0(name, ".csv")), stringsAsFactors = FALSE,
                check.names = FALSE)
  if (name == "salamanders") {
    d$site <- factor(d$site, levels = unique(d$site[order(d$site_id)]))
    d$mined <- factor(d$mined, levels = c("yes", "no"))       # reference: yes (mined)
  }
  if (name == "owls") {
    d$Nest <- factor(d$Nest, levels = unique(d$Nest[order(d$nest_id)]))
    d$FoodTreatment <- factor(d$FoodTreatment, levels = c("Deprived", "Satiated"))
    d$SexParent <- factor(d$SexParent, levels = c("Female", "Male"))
  }
  if (name == "cake") {
    d$recipe <- factor(d$recipe, levels = c("A", "B", "C"))
    d$batch <- factor(d$batch, levels = sort(unique(d$batch)))
  }
  if (name == "wine") {
    d$rating <- factor(d$rating, levels = 1:5, ordered = TRUE)
    d$temp <- factor(d$temp, levels = c("cold", "warm"))
    d$contact <- factor(d$contact, levels = c("no", "yes"))
    d$judge <- factor(d$judge, levels = sort(unique(d$judge)))
    d$bottle <- factor(d$bottle, levels = sort(unique(d$bottle)))
  }
  d
}

## =====================================================================================
## 2. Generic helpers (as in refs/common.R)
## =====================================================================================
timed <- function(expr) {
  warns <- character(0)
  t0 <- proc.time()[["elapsed"]]
  val <- tryCatch(withCallingHandlers(expr, warning = function(w) {
    warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning")
  }), error = function(e) e)
  list(value = val, time_sec = proc.time()[["elapsed"]] - t0, warnings = warns)
}
mat_list <- function(m) {
  if (is.null(m)) return(NULL)
  m <- as.matrix(m)
  lapply(seq_len(nrow(m)), function(i) unname(m[i, ]))
}
named_mat <- function(V) list(names = rownames(V), matrix = mat_list(unname(V)))
fixef_block <- function(beta, V) {
  se <- sqrt(diag(as.matrix(V)))
  list(names = names(beta), estimate = unname(beta), se = unname(se),
       z = unname(beta / se))
}
failed <- function(id, dataset, t, what) {
  list(id = id, dataset = dataset, status = "failed", what = what,
       error = conditionMessage(t$value), warnings = t$warnings, time_sec = t$time_sec)
}
FITS <- list()     # id -> loglik_full, for LR tests and the summary table
write_result <- function(res) {
  if (is.null(res$status)) res$status <- "ok"
  f <- file.path(RESULTS, paste0(res$id, ".json"))
  writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null",
                    na = "null"), f)
  FITS[[res$id]] <<- res
  cat(sprintf("%-44s %-6s %7.2fs  loglik_full=%s\n", res$id, res$status, res$time_sec,
              if (!is.null(res$loglik_full) && !is.na(res$loglik_full)) formatC(as.numeric(res$loglik_full), digits = 12, format = "g") else "NA"))
  invisible(f)
}
## LR test of the random intercept against the model without it (boundary: chibar2(01))
lr_block <- function(ll_re, ll_nore, id_nore) {
  chi2 <- 2 * (ll_re - ll_nore)
  list(id_no_re = id_nore, loglik_no_re = ll_nore, chi2 = chi2, df = 1,
       p_chi2 = pchisq(chi2, 1, lower.tail = FALSE),
       p_chibar2_01 = 0.5 * pchisq(chi2, 1, lower.tail = FALSE),
       note = "chi2 = 2 (loglik_full - loglik_no_re); p_chibar2_01 = 0.5 P(chi2_1 > chi2) as in Stata's 'LR test vs. <model>' for one variance on the boundary")
}
## Stata-style variance component with SE from an SE on the log-SD scale
re_stata <- function(group, logsd, logsd_se, from) {
  sd <- exp(logsd); v <- sd^2
  list(group = group, term = "(Intercept)", sd = sd, variance = v,
       log_sd = logsd, log_sd_se = logsd_se, sd_se = sd * logsd_se,
       var_se = 2 * v * logsd_se, lnvar = 2 * logsd, lnvar_se = 2 * logsd_se,
       note = sprintf("Stata var(_cons[%s]) = variance with var_se (delta method from %s)", group, from))
}

## Dispersion / shape in the packages' and in Stata's parameterisations.
## `lp` = glmmTMB's internal log-dispersion parameter 'betad' (or the custom fits'
## parameter converted to it), `lp_se` its SE.
disp_block <- function(family, lp, lp_se, source) {
  if (family == "nbinom2") {
    th <- exp(lp)
    list(family = "nbinom2", variance_function = "Var(y|b) = mu + mu^2/theta = mu (1 + alpha mu)",
         internal = list(name = "betad", meaning = "log(theta)", estimate = lp, se = lp_se, source = source),
         theta = th, theta_se = th * lp_se, ln_theta = lp, ln_theta_se = lp_se,
         glmmTMB_sigma = th,
         alpha = 1 / th, alpha_se = lp_se / th, lnalpha = -lp, lnalpha_se = lp_se,
         note = "glmmTMB sigma() = theta (size); Stata menbreg (default mean dispersion) reports /lnalpha = log(1/theta) = -betad, same SE")
  } else if (family == "nbinom1") {
    ph <- exp(lp)
    list(family = "nbinom1", variance_function = "Var(y|b) = mu (1 + phi) = mu (1 + delta)",
         internal = list(name = "betad", meaning = "log(phi)", estimate = lp, se = lp_se, source = source),
         phi = ph, phi_se = ph * lp_se, glmmTMB_sigma = ph,
         delta = ph, delta_se = ph * lp_se, lndelta = lp, lndelta_se = lp_se,
         note = "glmmTMB sigma() = phi; Stata menbreg ..., dispersion(constant) reports /lndelta = log(delta) = betad, same SE (delta = phi)")
  } else if (family == "Gamma") {
    sh <- exp(lp); sg <- sh^-0.5
    list(family = "Gamma", variance_function = "Var(y|b) = mu^2 / shape = sigma^2 mu^2",
         internal = list(name = "betad", meaning = "log(shape) (glmmTMB 1.1.5: dgamma(y, shape = exp(betad), scale = mu/shape); sigma() = 1/sqrt(shape))",
                         estimate = lp, se = lp_se, source = source),
         sigma = sg, sigma_se = 0.5 * sg * lp_se, glmmTMB_sigma = sg,
         shape = sh, shape_se = sh * lp_se, ln_shape = lp, ln_shape_se = lp_se,
         scale_phi = 1 / sh, scale_phi_se = lp_se / sh, ln_scale_phi = -lp, ln_scale_phi_se = lp_se,
         note = "glmmTMB sigma() = coefficient of variation = 1/sqrt(shape) = exp(-betad/2); shape = exp(betad), ln_shape = betad (same SE). scale_phi = 1/shape = sigma^2 is the GLM dispersion (Var = phi mu^2); Stata meglm family(gamma) estimates the scale by ML; its log is ln_scale_phi = -betad (same SE)")
  }
}

## =====================================================================================
## 3. Independent marginal likelihood by adaptive Gauss-Hermite quadrature
##    (random intercept b_g ~ N(0, sd^2), linear predictor eta + b_g)
## =====================================================================================
gh_rule <- function(n) {            # int exp(-x^2) f(x) dx ~ sum w f(x)   (Golub-Welsch)
  if (n == 1) return(list(x = 0, w = sqrt(pi)))
  i <- seq_len(n - 1)
  J <- matrix(0, n, n); J[cbind(i, i + 1)] <- J[cbind(i + 1, i)] <- sqrt(i / 2)
  e <- eigen(J, symmetric = TRUE)
  o <- order(e$values)
  list(x = e$values[o], w = sqrt(pi) * e$vectors[1, o]^2)
}
## Conditional log density of y given eta, its first and second derivative in eta
## (observed), and the Fisher (expected) information weight used by lme4's PIRLS.
fam_nb2 <- function(theta) list(
  ll = function(y, eta) dnbinom(y, size = theta, mu = exp(eta), log = TRUE),
  d1 = function(y, eta) { mu <- exp(eta); theta * (y - mu) / (theta + mu) },
  d2 = function(y, eta) { mu <- exp(eta); -(y + theta) * mu * theta / (theta + mu)^2 },
  fisher = function(y, eta) { mu <- exp(eta); mu * theta / (theta + mu) })
fam_nb1 <- function(phi) list(
  ll = function(y, eta) dnbinom(y, size = exp(eta) / phi, prob = 1 / (1 + phi), log = TRUE),
  d1 = function(y, eta) { k <- exp(eta) / phi; k * (digamma(y + k) - digamma(k) - log1p(phi)) },
  d2 = function(y, eta) { k <- exp(eta) / phi
    k * (digamma(y + k) - digamma(k) - log1p(phi)) + k^2 * (trigamma(y + k) - trigamma(k)) },
  fisher = function(y, eta) rep(NA_real_, length(y)))
fam_gamma <- function(shape) list(
  ll = function(y, eta) dgamma(y, shape = shape, rate = shape / exp(eta), log = TRUE),
  d1 = function(y, eta) shape * (y / exp(eta) - 1),
  d2 = function(y, eta) -shape * y / exp(eta),
  fisher = function(y, eta) rep(shape, length(y)))
## cumulative link: P(Y <= j) = F(alpha_j - eta), y in 1..K
fam_cum <- function(alpha, link = c("logit", "probit")) {
  link <- match.arg(link)
  Fc <- if (link == "logit") plogis else pnorm
  fd <- if (link == "logit") dlogis else dnorm
  fdd <- if (link == "logit") function(z) ifelse(is.finite(z), dlogis(z) * (1 - 2 * plogis(z)), 0)
         else function(z) ifelse(is.finite(z), -z * dnorm(z), 0)
  cut <- c(-Inf, alpha, Inf)
  pr <- function(y, eta) Fc(cut[y + 1] - eta) - Fc(cut[y] - eta)
  list(
    ll = function(y, eta) log(pr(y, eta)),
    d1 = function(y, eta) -(fd(cut[y + 1] - eta) - fd(cut[y] - eta)) / pr(y, eta),
    d2 = function(y, eta) { P <- pr(y, eta); g <- -(fd(cut[y + 1] - eta) - fd(cut[y] - eta)) / P
      (fdd(cut[y + 1] - eta) - fdd(cut[y] - eta)) / P - g^2 },
    fisher = function(y, eta) rep(NA_real_, length(y)))
}
## conditional mode of h(b) = sum ll(y, eta + b) - b^2/(2 sd^2) by safeguarded Newton
cond_mode <- function(fam, y, e, sd) {
  h <- function(b) sum(fam$ll(y, e + b)) - b^2 / (2 * sd^2)
  b <- 0; hb <- h(b)
  for (it in 1:200) {
    g1 <- sum(fam$d1(y, e + b)) - b / sd^2
    g2 <- sum(fam$d2(y, e + b)) - 1 / sd^2
    step <- -g1 / g2
    if (!is.finite(step) || g2 >= 0) step <- sign(g1) * 0.1
    k <- 0
    repeat {
      bn <- b + step; hn <- h(bn)
      if (is.finite(hn) && hn >= hb - 1e-13 * abs(hb)) break
      step <- step / 2; k <- k + 1
      if (k > 60) break
    }
    b <- bn; hb <- hn
    if (abs(step) < 1e-13 * max(1, abs(b))) break
  }
  b
}
## marginal log-likelihood; curvature = "observed" (true Laplace / AGHQ) or "fisher"
## (lme4's PIRLS weights, Laplace only)
marg_ll <- function(eta, y, g, sd, fam, nAGQ = 1, curvature = c("observed", "fisher"),
                    modes = NULL) {
  curvature <- match.arg(curvature)
  rule <- gh_rule(nAGQ)
  idx <- split(seq_along(y), g, drop = TRUE)
  tot <- 0
  for (k in seq_along(idx)) {
    i <- idx[[k]]; yy <- y[i]; e <- eta[i]
    b <- if (is.null(modes)) cond_mode(fam, yy, e, sd) else modes[k]
    W <- if (curvature == "observed") -sum(fam$d2(yy, e + b)) else sum(fam$fisher(yy, e + b))
    s <- 1 / sqrt(W + 1 / sd^2)
    nodes <- b + sqrt(2) * s * rule$x
    lv <- vapply(nodes, function(bb) sum(fam$ll(yy, e + bb)) + dnorm(bb, 0, sd, log = TRUE),
                 0) + rule$x^2
    m <- max(lv)
    tot <- tot + log(sqrt(2) * s) + m + log(sum(rule$w * exp(lv - m)))
  }
  tot
}
## Maximise the AGHQ marginal likelihood.  par = (beta, log sd, disp) with
## disp = lnalpha (nbinom2), lndelta (nbinom1), ln_shape (Gamma).
make_fam <- function(family, d) switch(family,
  nbinom2 = fam_nb2(exp(-d)), nbinom1 = fam_nb1(exp(d)), Gamma = fam_gamma(exp(d)),
  cum_logit = fam_cum(d, "logit"), cum_probit = fam_cum(d, "probit"))
disp_to_betad <- function(family, d) switch(family, nbinom2 = -d, nbinom1 = d, Gamma = d)
betad_to_disp <- function(family, bd) switch(family, nbinom2 = -bd, nbinom1 = bd, Gamma = bd)
aghq_fit <- function(family, X, y, g, offset, start, nAGQ) {
  p <- ncol(X)
  nll <- function(par) {
    v <- -marg_ll(drop(X %*% par[1:p]) + offset, y, g, exp(par[p + 1]),
                  make_fam(family, par[(p + 2):length(par)]), nAGQ = nAGQ)
    if (is.finite(v)) v else 1e100
  }
  opt <- nlminb(start, nll, control = list(rel.tol = 1e-13, x.tol = 1e-12, eval.max = 5000,
                                           iter.max = 2000))
  ## polish with Newton steps on a Richardson Hessian
  par <- opt$par
  for (it in 1:3) {
    gr <- numDeriv::grad(nll, par); H <- numDeriv::hessian(nll, par)
    step <- solve(H, gr)
    if (nll(par - step) <= nll(par)) par <- par - step
  }
  gr <- numDeriv::grad(nll, par); H <- numDeriv::hessian(nll, par)
  list(par = par, loglik = -nll(par), grad = gr, V = solve(H), opt = opt)
}

## =====================================================================================
## 4. Summaries
## =====================================================================================
ranef_first5_tmb <- function(fit) {
  re <- tryCatch(ranef(fit, condVar = TRUE)$cond, error = function(e) ranef(fit)$cond)
  out <- list()
  for (gname in names(re)) {
    r <- re[[gname]]; n <- min(5, nrow(r)); cv <- attr(r, "condVar")
    csd <- if (is.array(cv) && length(dim(cv)) == 3) sqrt(cv[1, 1, seq_len(n)]) else NULL
    out[[gname]] <- list(levels = rownames(r)[seq_len(n)], n_levels = nrow(r),
                         modes = unname(r[seq_len(n), 1]), cond_sd = csd)
  }
  out
}
ranef_first5_lme4 <- function(fit) {
  re <- ranef(fit, condVar = TRUE); out <- list()
  for (gname in names(re)) {
    r <- re[[gname]]; n <- min(5, nrow(r)); pv <- attr(r, "postVar")
    out[[gname]] <- list(levels = rownames(r)[seq_len(n)], n_levels = nrow(r),
                         modes = unname(r[seq_len(n), 1]),
                         cond_sd = if (!is.null(pv)) sqrt(pv[1, 1, seq_len(n)]) else NULL)
  }
  out
}
varcorr_sd <- function(group, sd) list(list(group = group, terms = "(Intercept)", sd = sd, variance = sd^2))

## glmmTMB's nlminb stops with max|gradient| ~1e-4..2e-3 here (estimates good to ~1e-5);
## a tighter rel.tol only gives "singular convergence (7)".  So every glmmTMB fit is
## polished by Newton steps on TMB's own objective/gradient (obj$fn, obj$gr) and the
## sdreport is recomputed at the polished parameters.
polish_tmb <- function(f) {
  obj <- f$obj; p <- f$fit$par
  info <- list(default_loglik = -f$fit$objective,
               default_max_abs_gradient = max(abs(obj$gr(p))),
               default_estimates = unname(p), steps = 0)
  for (i in 1:6) {
    g <- as.numeric(obj$gr(p))
    if (max(abs(g)) < 1e-9) break
    H <- optimHess(p, obj$fn, obj$gr)
    pn <- p - solve(H, g)
    if (obj$fn(pn) > obj$fn(p)) break
    p <- pn; info$steps <- info$steps + 1
  }
  val <- obj$fn(p)
  f$fit$par <- p; f$fit$objective <- val
  f$fit$parfull <- obj$env$last.par.best
  lpb <- obj$env$last.par.best
  if (length(obj$env$random)) lpb <- lpb[-obj$env$random]
  stopifnot(isTRUE(all.equal(unname(lpb), unname(p), tolerance = 1e-12)))
  f$sdr <- TMB::sdreport(obj, par.fixed = p)
  info$polished_loglik <- -val
  info$polished_max_abs_gradient <- max(abs(obj$gr(p)))
  info$note <- "glmmTMB fit (default glmmTMBControl) followed by Newton steps on TMB's objective; estimates, loglik and SEs (sdreport) are at the polished parameters"
  attr(f, "polish") <- info
  f
}
fit_tmb <- function(formula, data, family) {
  t <- timed(polish_tmb(glmmTMB(formula, data = data, family = family)))
  t
}

summarize_tmb <- function(fit, id, dataset, t, extra = list(), check = NULL) {
  fam <- family(fit)
  beta <- fixef(fit)$cond
  V <- as.matrix(vcov(fit)$cond)
  sdr <- summary(fit$sdr, "fixed")
  ll <- logLik(fit)
  has_re <- length(fit$modelInfo$reTrms$cond$flist) > 0
  Vf <- as.matrix(vcov(fit, full = TRUE))
  bd <- which(rownames(sdr) == "betad")
  th <- which(rownames(sdr) == "theta")
  res <- list(
    id = id, dataset = dataset, data_file = sprintf("data/%s.csv", dataset),
    package = "glmmTMB", package_version = pkgver("glmmTMB"), TMB_version = pkgver("TMB"),
    R_version = R.version.string, func = "glmmTMB",
    formula = paste(deparse(formula(fit), width.cutoff = 500L), collapse = " "),
    family = fam$family, link = fam$link,
    method = if (has_re) "Laplace (TMB)" else "ML (no random effects)",
    nAGQ = if (has_re) 1 else NA,
    optimizer = "nlminb", convergence = fit$fit$convergence,
    optimizer_message = fit$fit$message, pdHess = fit$sdr$pdHess,
    max_abs_gradient = max(abs(fit$obj$gr(fit$fit$par))),
    warnings = t$warnings, time_sec = t$time_sec,
    nobs = nobs(fit),
    ngroups = if (has_re) as.list(sapply(fit$modelInfo$reTrms$cond$flist, nlevels)) else NULL,
    fixef = fixef_block(beta, V),
    fixef_str17 = as.list(setNames(s17(unname(beta)), names(beta))),
    vcov = mat_list(unname(V)),
    vcov_note = "glmmTMB vcov(): TMB sdreport, inverse Hessian of the (Laplace) marginal log-likelihood over all parameters jointly; beta block",
    vcov_full = named_mat(Vf),
    vcov_full_note = "vcov(full = TRUE): beta, then betad (glmmTMB's log-dispersion, see dispersion$internal), then theta (log SD of the random intercept)",
    sdreport_fixed = list(names = rownames(sdr), estimate = unname(sdr[, 1]), se = unname(sdr[, 2])),
    dispersion = disp_block(fam$family, sdr[bd, 1], sdr[bd, 2], "glmmTMB sdreport 'betad'"),
    varcomp = if (has_re) varcorr_sd(names(fit$modelInfo$reTrms$cond$flist)[1], exp(sdr[th, 1])) else list(),
    loglik = as.numeric(ll), loglik_full = as.numeric(ll), df = attr(ll, "df"),
    minus2loglik = -2 * as.numeric(ll), AIC = AIC(fit), BIC = BIC(fit),
    loglik_note = "glmmTMB log-likelihood: full density (dnbinom incl. -log y!, dgamma incl. (shape-1) log y - lgamma(shape)); verified by loglik_check")
  sig_chk <- if (fam$family == "Gamma") exp(-sdr[bd, 1] / 2) else exp(sdr[bd, 1])
  stopifnot(abs(sig_chk - sigma(fit)) < 1e-10 * sigma(fit))
  if (has_re) {
    g <- names(fit$modelInfo$reTrms$cond$flist)[1]
    res$theta_tmb <- list(names = "theta", estimate = sdr[th, 1], se = sdr[th, 2],
                          note = "glmmTMB internal RE parameter: log(SD) of the random intercept, SE from sdreport")
    res$re_stata <- re_stata(g, sdr[th, 1], sdr[th, 2], "glmmTMB sdreport theta = log SD")
    res$ranef_first5 <- ranef_first5_tmb(fit)
  }
  if (!is.null(check)) res$loglik_check <- check
  res$polish <- attr(fit, "polish")
  c(res, extra)
}

TIGHT <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                      optCtrl = list(rhoend = 1e-9, maxfun = 1e5))
TIGHT_NOTE <- "glmerControl(optimizer='bobyqa', tolPwrss=1e-12, optCtrl=list(rhoend=1e-9, maxfun=1e5))"

summarize_merMod <- function(fit, id, dataset, t, control_note, extra = list()) {
  beta <- fixef(fit)
  V <- as.matrix(vcov(fit))
  ll <- logLik(fit)
  res <- list(
    id = id, dataset = dataset, data_file = sprintf("data/%s.csv", dataset),
    package = "lme4", package_version = pkgver("lme4"), R_version = R.version.string,
    func = if (inherits(fit, "glmerMod") && grepl("Negative Binomial", family(fit)$family)) "glmer.nb" else "glmer",
    formula = paste(deparse(formula(fit), width.cutoff = 500L), collapse = " "),
    family = family(fit)$family, link = family(fit)$link,
    method = "Laplace (lme4 PIRLS)", nAGQ = fit@devcomp$dims[["nAGQ"]],
    control = control_note, optimizer = fit@optinfo$optimizer,
    convergence_messages = c(fit@optinfo$conv$lme4$messages, fit@optinfo$message),
    warnings = t$warnings, time_sec = t$time_sec,
    nobs = nobs(fit), ngroups = as.list(ngrps(fit)),
    fixef = fixef_block(beta, V),
    fixef_str17 = as.list(setNames(s17(unname(beta)), names(beta))),
    vcov = mat_list(unname(V)),
    vcov_note = "lme4 vcov(): beta block of the inverse finite-difference Hessian of the deviance over (theta, beta) at fixed NB theta / Gamma scale",
    varcomp = varcorr_sd(names(ngrps(fit))[1], unname(attr(VarCorr(fit)[[1]], "stddev"))),
    theta = unname(getME(fit, "theta")),
    theta_note = if (fit@devcomp$dims[["useSc"]]) "lme4 theta is RELATIVE to sigma(fit) here (family with a scale): RE SD = theta * sigma" else "lme4 theta = RE SD (no scale parameter)",
    loglik = as.numeric(ll), loglik_full = as.numeric(ll), df = attr(ll, "df"),
    minus2loglik = -2 * as.numeric(ll), AIC = AIC(fit), BIC = BIC(fit),
    ranef_first5 = ranef_first5_lme4(fit))
  c(res, extra)
}

summarize_clmm <- function(fit, id, dataset, t, extra = list(), check = NULL) {
  V <- as.matrix(vcov(fit))
  a <- fit$alpha; b <- fit$beta
  se <- sqrt(diag(V))
  tau <- log(fit$ST[[1]][1, 1]); tau_se <- unname(se["ST1"])
  ll <- logLik(fit)
  g <- names(fit$ST)[1]
  res <- list(
    id = id, dataset = dataset, data_file = sprintf("data/%s.csv", dataset),
    package = "ordinal", package_version = pkgver("ordinal"), R_version = R.version.string,
    func = "clmm", formula = paste(deparse(fit$formula, width.cutoff = 500L), collapse = " "),
    family = "cumulative", link = fit$link, threshold = fit$threshold,
    method = if (fit$nAGQ == 1) "Laplace" else "AGHQ", nAGQ = fit$nAGQ,
    control = "clmm.control() defaults (nlminb, gradTol = 1e-4)",
    optimizer = "nlminb", convergence = fit$optRes$convergence,
    optimizer_message = fit$optRes$message, max_abs_gradient = max(abs(fit$gradient)),
    warnings = t$warnings, time_sec = t$time_sec,
    nobs = nobs(fit), ngroups = setNames(list(nlevels(fit$model[[g]]) %||% fit$dims$nlev.re[[1]]), g),
    fixef = fixef_block(b, V[names(b), names(b), drop = FALSE]),
    thresholds = list(names = names(a), estimate = unname(a), se = unname(se[names(a)]),
                      convention = "P(Y <= j | b) = F(theta_j - x'beta - b_judge); same sign as Stata meologit/meoprobit /cut1../cut4"),
    vcov = mat_list(unname(V[names(b), names(b), drop = FALSE])),
    vcov_full = named_mat(V),
    vcov_note = "ordinal vcov(): inverse of clmm's (numerical) Hessian of -loglik over (thresholds, beta, ST1) with ST1 = log(SD of random intercept)",
    varcomp = varcorr_sd(g, exp(tau)),
    log_sd = list(name = "ST1", estimate = tau, se = tau_se,
                  note = "clmm's optimisation parameter for the random effect: log(SD) (fit$ST holds the SD itself)"),
    re_stata = re_stata(g, tau, tau_se, "clmm vcov 'ST1' = log SD"),
    loglik = as.numeric(ll), loglik_full = as.numeric(ll), df = attr(ll, "df"),
    minus2loglik = -2 * as.numeric(ll), AIC = -2 * as.numeric(ll) + 2 * attr(ll, "df"),
    BIC = -2 * as.numeric(ll) + log(nobs(fit)) * attr(ll, "df"),
    loglik_note = "multinomial log-likelihood of the observed categories; no normalising constants arise",
    ranef_first5 = list(judge = list(levels = levels(fit$model[[g]])[1:5],
                                     modes = unname(fit$ranef[1:5]),
                                     cond_sd = unname(sqrt(fit$condVar[1:5])))))
  if (!is.null(check)) res$loglik_check <- check
  if (fit$nAGQ == 1)
    res$caveat <- "clmm's Laplace (nAGQ = 1) value uses conditional modes updated only to its inner tolerance (gradTol 1e-4): at the same estimates it differs from the exact Laplace by a few 1e-6 (loglik_check$diff_vs_package), and its optimum by ~1e-5 in the estimates. The wine_<link>_aghq1_custom fit is the polished Laplace optimum. (nAGQ > 1 values agree with the independent AGHQ to ~1e-10.)"
  c(res, extra)
}

## =====================================================================================
## 5. Fits
## =====================================================================================
export_all()

## ---------- 5a. negative binomial: NB2 / NB1 / glmer.nb / no-RE --------------------
nb_models <- list(
  salamanders = list(data = "salamanders", group = "site",
                     f_re = count ~ mined + (1 | site), f_nore = count ~ mined,
                     resp = "count", offset = NULL),
  owls = list(data = "owls", group = "Nest",
              f_re = SiblingNegotiation ~ FoodTreatment + SexParent + offset(log(BroodSize)) + (1 | Nest),
              f_nore = SiblingNegotiation ~ FoodTreatment + SexParent + offset(log(BroodSize)),
              resp = "SiblingNegotiation", offset = "BroodSize"))

## the pieces the independent likelihood needs
design <- function(m, d) {
  X <- model.matrix(lme4::nobars(m$f_nore), d)
  list(X = X, y = d[[m$resp]], g = d[[m$group]],
       offset = if (is.null(m$offset)) rep(0, nrow(d)) else log(d[[m$offset]]))
}
tmb_check <- function(fit, family, D) {
  sdr <- summary(fit$sdr, "fixed")
  beta <- fixef(fit)$cond
  lp <- sdr[rownames(sdr) == "betad", 1]
  sd <- exp(sdr[rownames(sdr) == "theta", 1])
  fam <- make_fam(family, betad_to_disp(family, lp))
  eta <- drop(D$X %*% beta) + D$offset
  l1 <- marg_ll(eta, D$y, D$g, sd, fam, 1, "observed")
  list(custom_laplace_observed = l1, diff_vs_package = l1 - as.numeric(logLik(fit)),
       custom_aghq30_at_estimates = marg_ll(eta, D$y, D$g, sd, fam, 30, "observed"),
       note = "independent Laplace (observed curvature at the conditional mode, full density) at glmmTMB's estimates: equality confirms glmmTMB's loglik is the full Laplace marginal log-likelihood; the AGHQ-30 value is the (numerically) exact marginal log-likelihood at the same parameters")
}

for (nm in names(nb_models)) {
  m <- nb_models[[nm]]
  d <- load_data(m$data)
  D <- design(m, d)
  tag <- if (is.null(m$offset)) "" else "_offset"

  ## no-random-effect models
  t <- fit_tmb(m$f_nore, d, nbinom2)
  write_result(summarize_tmb(t$value, sprintf("%s_nb2%s_nore_glmmtmb", nm, tag), m$data, t))
  t <- fit_tmb(m$f_nore, d, nbinom1)
  write_result(summarize_tmb(t$value, sprintf("%s_nb1%s_nore_glmmtmb", nm, tag), m$data, t))
  t <- timed(glm.nb(m$f_nore, data = d, control = glm.control(epsilon = 1e-12, maxit = 100)))
  fnb <- t$value
  id0 <- sprintf("%s_nb2%s_nore_glmnb", nm, tag)
  write_result(list(
    id = id0, dataset = m$data, data_file = sprintf("data/%s.csv", m$data),
    package = "MASS", package_version = pkgver("MASS"), R_version = R.version.string,
    func = "glm.nb", formula = paste(deparse(m$f_nore, width.cutoff = 500L), collapse = " "),
    family = "nbinom2", link = "log", method = "ML (no random effects)", nAGQ = NA,
    control = "glm.control(epsilon=1e-12, maxit=100)",
    warnings = t$warnings, time_sec = t$time_sec, nobs = nobs(fnb),
    ngroups = NULL, varcomp = list(),
    fixef = fixef_block(coef(fnb), vcov(fnb)), vcov = mat_list(unname(vcov(fnb))),
    vcov_note = "MASS vcov(glm.nb): beta block at fixed theta (the NB2 beta/theta information is block-diagonal in expectation, so this equals the joint-ML SE only asymptotically)",
    dispersion = disp_block("nbinom2", log(fnb$theta), fnb$SE.theta / fnb$theta,
                            "MASS glm.nb theta and SE.theta (delta method to the log scale)"),
    loglik = as.numeric(logLik(fnb)), loglik_full = as.numeric(logLik(fnb)),
    df = attr(logLik(fnb), "df"), minus2loglik = fnb$twologlik * -1,
    AIC = AIC(fnb), BIC = BIC(fnb),
    loglik_note = "glm.nb logLik is the full NB2 log-likelihood (includes -log y!)"))

  ## glmmTMB NB2 / NB1 with random intercept
  for (fam in c("nbinom2", "nbinom1")) {
    short <- if (fam == "nbinom2") "nb2" else "nb1"
    t <- fit_tmb(m$f_re, d, fam)
    id <- sprintf("%s_%s%s_glmmtmb", nm, short, tag)
    id_nore <- sprintf("%s_%s%s_nore_glmmtmb", nm, short, tag)
    chk <- tmb_check(t$value, fam, D)
    res <- summarize_tmb(t$value, id, m$data, t, check = chk)
    res$lr_vs_no_re <- lr_block(res$loglik_full, FITS[[id_nore]]$loglik_full, id_nore)
    write_result(res)
    tmbfit <- t$value
    ## custom AGHQ fits (nAGQ = 7: Stata's default number of points; 30: ~exact)
    sdr <- summary(tmbfit$sdr, "fixed")
    start <- c(fixef(tmbfit)$cond, sdr[rownames(sdr) == "theta", 1],
               betad_to_disp(fam, sdr[rownames(sdr) == "betad", 1]))
    for (q in c(1, 7, 30)) {
      t <- timed(aghq_fit(fam, D$X, D$y, D$g, D$offset, start, q))
      a <- t$value; p <- ncol(D$X)
      beta <- setNames(a$par[1:p], colnames(D$X))
      Vb <- a$V[1:p, 1:p, drop = FALSE]; dimnames(Vb) <- list(names(beta), names(beta))
      dname <- switch(fam, nbinom2 = "lnalpha", nbinom1 = "lndelta")
      Vfull <- a$V; dimnames(Vfull) <- rep(list(c(names(beta), "log_sd", dname)), 2)
      idq <- sprintf("%s_%s%s_aghq%d_custom", nm, short, tag, q)
      res <- list(
        id = idq, dataset = m$data, data_file = sprintf("data/%s.csv", m$data),
        package = "custom R (fit_families.R marg_ll/aghq_fit)", package_version = NA,
        R_version = R.version.string, func = "aghq_fit",
        formula = paste(deparse(m$f_re, width.cutoff = 500L), collapse = " "),
        family = fam, link = "log",
        method = if (q == 1) "Laplace (observed curvature)" else "AGHQ (mode/curvature adaptive)",
        nAGQ = q, optimizer = "nlminb + 3 Newton polishing steps (numDeriv Hessian)",
        max_abs_gradient = max(abs(a$grad)),
        warnings = t$warnings, time_sec = t$time_sec, nobs = length(D$y),
        ngroups = setNames(list(nlevels(D$g)), m$group),
        fixef = fixef_block(beta, Vb), vcov = mat_list(unname(Vb)),
        vcov_note = "inverse numDeriv (Richardson) Hessian of -loglik over (beta, log SD, dispersion parameter); beta block",
        vcov_full = named_mat(Vfull),
        dispersion = disp_block(fam, disp_to_betad(fam, a$par[p + 2]), sqrt(a$V[p + 2, p + 2]),
                                sprintf("custom fit, parameter %s", dname)),
        varcomp = varcorr_sd(m$group, exp(a$par[p + 1])),
        re_stata = re_stata(m$group, a$par[p + 1], sqrt(a$V[p + 1, p + 1]), "custom fit log SD"),
        loglik = a$loglik, loglik_full = a$loglik, df = p + 2,
        minus2loglik = -2 * a$loglik, AIC = -2 * a$loglik + 2 * (p + 2),
        BIC = -2 * a$loglik + log(length(D$y)) * (p + 2),
        note = if (q == 1) "independent re-implementation of the Laplace fit: should reproduce the glmmTMB fit" else "adaptive Gauss-Hermite quadrature centred at the conditional mode with the observed curvature (like lme4/clmm nAGQ > 1). Stata's default intmethod(mvaghermite) adapts to the posterior mean/variance instead, so 7-point values differ from Stata's slightly; with 30 points both are the exact ML fit.")
      res$lr_vs_no_re <- lr_block(a$loglik, FITS[[id_nore]]$loglik_full, id_nore)
      write_result(res)
    }
  }

  ## lme4::glmer.nb (NB2): defaults and tight
  for (v in c("default", "tight")) {
    ## lme4 1.1-31's glmer.nb() cannot take `tol` (it is forwarded to glmer(): "unused
    ## argument"), so the tight variant refines theta with lme4's own optTheta() afterwards.
    t <- timed(if (v == "default") glmer.nb(m$f_re, data = d) else {
      g1 <- glmer.nb(m$f_re, data = d, control = TIGHT)
      lme4:::optTheta(g1, interval = log(getME(g1, "glmer.nb.theta")) + c(-0.25, 0.25),
                      tol = 1e-9, control = TIGHT)
    })
    id <- sprintf("%s_nb2%s_glmernb%s", nm, tag, if (v == "tight") "_tight" else "")
    id_nore <- sprintf("%s_nb2%s_nore_glmnb", nm, tag)
    if (inherits(t$value, "error")) { write_result(failed(id, m$data, t, "glmer.nb")); next }
    fit <- t$value
    thnb <- getME(fit, "glmer.nb.theta")
    beta <- fixef(fit); sd <- unname(getME(fit, "theta"))
    eta <- drop(D$X %*% beta) + D$offset
    fam2 <- fam_nb2(thnb)
    modes <- ranef(fit)[[m$group]][levels(D$g), 1]
    chk <- list(
      custom_laplace_fisher = marg_ll(eta, D$y, D$g, sd, fam2, 1, "fisher", modes = modes),
      custom_laplace_observed = marg_ll(eta, D$y, D$g, sd, fam2, 1, "observed"),
      custom_aghq30_at_estimates = marg_ll(eta, D$y, D$g, sd, fam2, 30, "observed"))
    chk$diff_fisher_vs_package <- chk$custom_laplace_fisher - as.numeric(logLik(fit))
    chk$note <- "lme4's Laplace uses the PIRLS (Fisher/expected-information) weights mu*theta/(theta+mu) in the log-determinant instead of the observed curvature (y+theta)mu*theta/(theta+mu)^2 (log link is not canonical for NB), so its 'Laplace' log-likelihood differs from the true Laplace (glmmTMB, Stata). custom_laplace_fisher reproduces lme4's value at its estimates; custom_laplace_observed is the true Laplace at the same parameters."
    extra <- list(
      dispersion = disp_block("nbinom2", log(thnb), NA_real_, "lme4 getME(fit, 'glmer.nb.theta'); glmer.nb gives no SE"),
      loglik_note = "lme4 logLik: full NB2 density (includes -log y!), df counts theta, but the Laplace approximation uses Fisher weights: see loglik_check. loglik_full = lme4's value (constants complete); it is NOT the same approximation as glmmTMB's Laplace.",
      loglik_check = chk,
      lr_vs_no_re = lr_block(as.numeric(logLik(fit)), FITS[[id_nore]]$loglik_full, id_nore))
    if (v == "tight") {
      ## SEs incl. log(theta): numDeriv Hessian of lme4's Laplace deviance over (sd, beta, log theta)
      hs <- tryCatch({
        dfun <- function(par) {
          k <- length(par)
          dd <- glmer(m$f_re, data = d, family = MASS::negative.binomial(exp(par[k])),
                      control = TIGHT, devFunOnly = TRUE)
          dd(par[-k])
        }
        par <- c(sd, beta, log(thnb))
        H <- numDeriv::hessian(dfun, par)
        C <- 2 * solve(H)
        k <- length(par)
        list(par_names = c("sd", names(beta), "log_theta"), estimate = par,
             se = sqrt(diag(C)), lnalpha = -log(thnb), lnalpha_se = sqrt(C[k, k]),
             var = sd^2, var_se = 2 * sd * sqrt(C[1, 1]),
             note = "numDeriv::hessian of lme4's Laplace deviance (-2 logLik, Fisher-weight Laplace) over (sd, beta, log theta), rebuilding the glmer devfun with negative.binomial(theta) at each point; cov = 2 H^-1")
      }, error = function(e) list(error = conditionMessage(e)))
      extra$hessian_se <- hs
      if (is.null(hs$error)) {
        extra$dispersion <- disp_block("nbinom2", log(thnb), hs$lnalpha_se, "lme4 glmer.nb.theta; SE from hessian_se")
      }
    }
    write_result(summarize_merMod(fit, id, m$data, t,
                                  if (v == "tight") paste0("glmer.nb(control = ", TIGHT_NOTE, "), then lme4:::optTheta(fit, interval = log(theta) +- 0.25, tol = 1e-9, control = same) to refine theta") else "lme4 defaults (glmer.nb())",
                                  extra))
  }
}

## ---------- 5b. Gamma, log link: cake angle --------------------------------------
d <- load_data("cake")
f_re <- angle ~ recipe + temp_c + (1 | batch)
f_nore <- angle ~ recipe + temp_c
D <- list(X = model.matrix(f_nore, d), y = d$angle, g = d$batch, offset = rep(0, nrow(d)))

t <- fit_tmb(f_nore, d, Gamma(link = "log"))
write_result(summarize_tmb(t$value, "cake_gamma_nore_glmmtmb", "cake", t))

t <- timed(glm(f_nore, data = d, family = Gamma(link = "log"), control = glm.control(epsilon = 1e-14, maxit = 100)))
g0 <- t$value
gs <- MASS::gamma.shape(g0, it.lim = 100, eps.max = 1e-12)
ll_ml <- sum(dgamma(d$angle, shape = gs$alpha, rate = gs$alpha / fitted(g0), log = TRUE))
write_result(list(
  id = "cake_gamma_nore_glm", dataset = "cake", data_file = "data/cake.csv",
  package = "stats+MASS", package_version = pkgver("MASS"), R_version = R.version.string,
  func = "glm + MASS::gamma.shape", formula = "angle ~ recipe + temp_c", family = "Gamma", link = "log",
  method = "ML (no random effects)", nAGQ = NA, warnings = t$warnings, time_sec = t$time_sec,
    ngroups = NULL, varcomp = list(),
  nobs = nobs(g0),
  fixef = fixef_block(coef(g0), vcov(g0, dispersion = 1 / gs$alpha)),
  vcov = mat_list(unname(vcov(g0, dispersion = 1 / gs$alpha))),
  vcov_note = "vcov(glm, dispersion = 1/shape_ML): expected-information beta covariance at the ML scale (glm's default summary instead uses the Pearson dispersion)",
  fixef_se_glm_default = unname(sqrt(diag(vcov(g0)))),
  dispersion = disp_block("Gamma", log(gs$alpha), gs$SE / gs$alpha, "MASS::gamma.shape ML shape and SE (delta method to the log scale)"),
  glm_dispersion_pearson = summary(g0)$dispersion,
  loglik = as.numeric(logLik(g0)), loglik_full = ll_ml, df = length(coef(g0)) + 1,
  minus2loglik = -2 * ll_ml, AIC = -2 * ll_ml + 2 * (length(coef(g0)) + 1),
  BIC = -2 * ll_ml + log(nobs(g0)) * (length(coef(g0)) + 1),
  loglik_note = "loglik = R's logLik(glm): Gamma density with dispersion = deviance/n (not the ML scale). loglik_full = full Gamma log-likelihood at the glm betas (the beta MLE does not depend on the shape) and MASS::gamma.shape's ML shape: the true maximised log-likelihood, equal to glmmTMB's no-RE fit."))

t <- fit_tmb(f_re, d, Gamma(link = "log"))
tmbg <- t$value
res <- summarize_tmb(tmbg, "cake_gamma_glmmtmb", "cake", t, check = tmb_check(tmbg, "Gamma", D))
res$lr_vs_no_re <- lr_block(res$loglik_full, FITS[["cake_gamma_nore_glmmtmb"]]$loglik_full, "cake_gamma_nore_glmmtmb")
write_result(res)
sdr <- summary(tmbg$sdr, "fixed")
start <- c(fixef(tmbg)$cond, sdr[rownames(sdr) == "theta", 1], sdr[rownames(sdr) == "betad", 1])
for (q in c(1, 7, 30)) {
  t <- timed(aghq_fit("Gamma", D$X, D$y, D$g, D$offset, start, q))
  a <- t$value; p <- ncol(D$X)
  beta <- setNames(a$par[1:p], colnames(D$X))
  Vb <- a$V[1:p, 1:p, drop = FALSE]; dimnames(Vb) <- list(names(beta), names(beta))
  Vfull <- a$V; dimnames(Vfull) <- rep(list(c(names(beta), "log_sd", "ln_shape")), 2)
  idq <- sprintf("cake_gamma_aghq%d_custom", q)
  res <- list(
    id = idq, dataset = "cake", data_file = "data/cake.csv",
    package = "custom R (fit_families.R marg_ll/aghq_fit)", package_version = NA,
    R_version = R.version.string, func = "aghq_fit",
    formula = "angle ~ recipe + temp_c + (1 | batch)", family = "Gamma", link = "log",
    method = if (q == 1) "Laplace (observed curvature)" else "AGHQ (mode/curvature adaptive)",
    nAGQ = q, optimizer = "nlminb + 3 Newton polishing steps (numDeriv Hessian)",
    max_abs_gradient = max(abs(a$grad)), warnings = t$warnings, time_sec = t$time_sec,
    nobs = length(D$y), ngroups = list(batch = nlevels(D$g)),
    fixef = fixef_block(beta, Vb), vcov = mat_list(unname(Vb)),
    vcov_note = "inverse numDeriv (Richardson) Hessian of -loglik over (beta, log SD, ln_shape); beta block",
    vcov_full = named_mat(Vfull),
    dispersion = disp_block("Gamma", a$par[p + 2], sqrt(a$V[p + 2, p + 2]), "custom fit, parameter ln_shape"),
    varcomp = varcorr_sd("batch", exp(a$par[p + 1])),
    re_stata = re_stata("batch", a$par[p + 1], sqrt(a$V[p + 1, p + 1]), "custom fit log SD"),
    loglik = a$loglik, loglik_full = a$loglik, df = p + 2, minus2loglik = -2 * a$loglik,
    AIC = -2 * a$loglik + 2 * (p + 2), BIC = -2 * a$loglik + log(length(D$y)) * (p + 2),
    note = if (q == 1) "independent re-implementation of the Laplace fit: should reproduce cake_gamma_glmmtmb" else "adaptive Gauss-Hermite quadrature centred at the conditional mode with the observed curvature; Stata's default mvaghermite differs slightly at 7 points")
  res$lr_vs_no_re <- lr_block(a$loglik, FITS[["cake_gamma_nore_glmmtmb"]]$loglik_full, "cake_gamma_nore_glmmtmb")
  write_result(res)
}

## glmer Gamma (for contrast).  What lme4 1.1-31 computes for a Gamma GLMM (reproduced below):
##   linear predictor X beta + theta u with theta = RELATIVE SD (VarCorr reports theta*sigma),
##   u = conditional mode of  sum devres(y, mu) + ||u||^2  (PIRLS, weights W = 1 for Gamma/log),
##   -2 "loglik" = log(1 + theta^2 sum_i W_i) per group + ||u||^2 + aic(y, mu),
##   aic = -2 sum log dgamma(y, shape = n/dev, scale = mu dev/n) + 2, dev = sum devres at the modes.
## The ||u||^2 term is not divided by the dispersion, so this is not the Laplace approximation
## of any Gamma GLMM likelihood (for a consistent one the penalty would be ||u||^2 / phi).
glmer_gamma_reproduce <- function(fit, D) {
  beta <- fixef(fit); th <- unname(getME(fit, "theta")); sg <- sigma(fit)
  sd_vc <- unname(attr(VarCorr(fit)[[1]], "stddev"))
  eta <- drop(D$X %*% beta)
  fam1 <- fam_gamma(1)          # sum devres + u^2 has the same mode as dgamma(shape 1) + N(0, theta^2)
  idx <- split(seq_along(D$y), D$g, drop = TRUE)
  b <- vapply(idx, function(i) cond_mode(fam1, D$y[i], eta[i], th), 0)
  mu <- exp(eta + b[as.integer(D$g)])
  dev <- sum(Gamma()$dev.resids(D$y, mu, rep(1, length(mu))))
  aic <- Gamma()$aic(D$y, 1, mu, rep(1, length(mu)), dev)
  ldL2 <- sum(vapply(idx, function(i) log(1 + th^2 * length(i)), 0))
  u2 <- sum((b / th)^2)
  list(reproduced_loglik = -0.5 * (ldL2 + u2 + aic),
       theta_relative = th, sigma_lme4 = sg, re_sd_varcorr = sd_vc,
       disp_dev_over_n = dev / length(D$y), implied_shape = length(D$y) / dev,
       true_loglik_aghq30_at_varcorr_sd_and_sigma = marg_ll(eta, D$y, D$g, sd_vc, fam_gamma(1 / sg^2), 30, "observed"),
       true_loglik_aghq30_at_varcorr_sd_shape_profiled = optimize(function(ls) marg_ll(eta, D$y, D$g, sd_vc, fam_gamma(exp(ls)), 30, "observed"),
                                                                  c(0, 8), maximum = TRUE)$objective,
       note = "reproduced_loglik recomputes lme4's objective from the formula in the comment of fit_families.R (theta relative, W = 1, ||u||^2 not scaled by the dispersion, plug-in dispersion dev/n, +2 from Gamma()$aic). It is not a marginal log-likelihood: glmer's Gamma estimates (notably the RE SD) are not ML estimates and its logLik/AIC are not comparable with glmmTMB/Stata. The true_loglik_* values are the exact (AGHQ-30) Gamma GLMM log-likelihood at glmer's beta and VarCorr SD (with shape = 1/sigma^2, or the shape maximised): both far below glmmTMB's maximum.")
}
for (v in c("default", "tight")) {
  t <- timed(glmer(f_re, data = d, family = Gamma(link = "log"),
                   control = if (v == "tight") TIGHT else glmerControl()))
  id <- if (v == "tight") "cake_gamma_glmer_tight" else "cake_gamma_glmer"
  if (inherits(t$value, "error")) { write_result(failed(id, "cake", t, "glmer")); next }
  fit <- t$value
  chk <- glmer_gamma_reproduce(fit, D)
  chk$diff_reproduced_vs_package <- chk$reproduced_loglik - as.numeric(logLik(fit))
  res <- summarize_merMod(fit, id, "cake", t, if (v == "tight") TIGHT_NOTE else "lme4 defaults (glmerControl())",
    list(sigma_lme4 = sigma(fit),
         sigma_lme4_note = "lme4 sigma() for this GLMM (residual SD shown by VarCorr): a moment-type scale estimate from the PIRLS fit, not an ML estimate of the Gamma CV; VarCorr's RE SD = theta * sigma_lme4",
         loglik_check = chk))
  res$loglik_full <- NA
  res$loglik_note <- "lme4's Gamma GLMM 'logLik' is not a marginal log-likelihood (see loglik_check): loglik_full is null on purpose. Use cake_gamma_glmmtmb (or the *_custom fits) as the Gamma reference."
  write_result(res)
}

## ---------- 5c. ordinal: wine -------------------------------------------------------
d <- load_data("wine")
## clmm with its default control (nlminb, gradTol = 1e-4).  A tighter gradTol (1e-8) makes
## the inner random-effect updates fail ("step factor reduced below minimum") and ends at a
## *lower* log-likelihood, so it is not used; the *_custom wine fits give polished optima.
CLMM_CTRL <- clmm.control()
for (lk in c("logit", "probit")) {
  t <- timed(clm(rating ~ temp + contact, data = d, link = lk,
                 control = clm.control(gradTol = 1e-10, relTol = 1e-12)))
  fit0 <- t$value
  V <- vcov(fit0); b <- fit0$beta; a <- fit0$alpha
  id0 <- sprintf("wine_clm_%s", lk)
  write_result(list(
    id = id0, dataset = "wine", data_file = "data/wine.csv",
    package = "ordinal", package_version = pkgver("ordinal"), R_version = R.version.string,
    func = "clm", formula = "rating ~ temp + contact", family = "cumulative", link = lk,
    method = "ML (no random effects)", nAGQ = NA,
    control = "clm.control(gradTol=1e-10, relTol=1e-12)",
    convergence = fit0$convergence$code, max_abs_gradient = max(abs(fit0$gradient)),
    warnings = t$warnings, time_sec = t$time_sec, nobs = nobs(fit0),
    ngroups = NULL, varcomp = list(),
    fixef = fixef_block(b, V[names(b), names(b)]),
    thresholds = list(names = names(a), estimate = unname(a), se = unname(sqrt(diag(V))[names(a)]),
                      convention = "P(Y <= j) = F(theta_j - x'beta) (Stata ologit/oprobit /cut)"),
    vcov = mat_list(unname(V[names(b), names(b)])), vcov_full = named_mat(V),
    loglik = as.numeric(logLik(fit0)), loglik_full = as.numeric(logLik(fit0)),
    df = attr(logLik(fit0), "df"), minus2loglik = -2 * as.numeric(logLik(fit0)),
    AIC = AIC(fit0), BIC = BIC(fit0)))
  for (q in if (lk == "logit") c(1, 7, 12) else c(1, 7)) {
    t <- timed(clmm(rating ~ temp + contact + (1 | judge), data = d, link = lk, nAGQ = q,
                    control = CLMM_CTRL))
    id <- sprintf("wine_clmm_%s_%s", lk, if (q == 1) "laplace" else paste0("nagq", q))
    if (inherits(t$value, "error")) { write_result(failed(id, "wine", t, "clmm")); next }
    fit <- t$value
    X <- model.matrix(~ temp + contact, d)[, -1, drop = FALSE]
    eta <- drop(X %*% fit$beta)
    fam <- fam_cum(fit$alpha, lk)
    y <- as.integer(d$rating)
    lq <- marg_ll(eta, y, d$judge, fit$ST[[1]][1, 1], fam, q, "observed")
    chk <- list(custom_same_nAGQ = lq, diff_vs_package = lq - as.numeric(logLik(fit)),
                custom_aghq30_at_estimates = marg_ll(eta, y, d$judge, fit$ST[[1]][1, 1], fam, 30, "observed"),
                note = "independent mode/curvature-adaptive GHQ with the same number of points at clmm's estimates")
    res <- summarize_clmm(fit, id, "wine", t, check = chk)
    res$lr_vs_no_re <- lr_block(res$loglik_full, FITS[[id0]]$loglik_full, id0)
    write_result(res)
    ## independent fit of the same model (polished optimum; cross-check of clmm)
    start <- c(fit$beta, log(fit$ST[[1]][1, 1]), fit$alpha)
    t <- timed(aghq_fit(paste0("cum_", lk), X, y, d$judge, rep(0, length(y)), start, q))
    a <- t$value; p <- ncol(X); k <- length(a$par)
    nms <- c(colnames(X), "log_sd", names(fit$alpha))
    Vfull <- a$V; dimnames(Vfull) <- list(nms, nms)
    beta <- setNames(a$par[1:p], colnames(X))
    idq <- sprintf("wine_%s_aghq%d_custom", lk, q)
    res <- list(
      id = idq, dataset = "wine", data_file = "data/wine.csv",
      package = "custom R (fit_families.R marg_ll/aghq_fit)", package_version = NA,
      R_version = R.version.string, func = "aghq_fit",
      formula = "rating ~ temp + contact + (1 | judge)", family = "cumulative", link = lk,
      method = if (q == 1) "Laplace (observed curvature)" else "AGHQ (mode/curvature adaptive)",
      nAGQ = q, optimizer = "nlminb + 3 Newton polishing steps (numDeriv Hessian)",
      max_abs_gradient = max(abs(a$grad)), warnings = t$warnings, time_sec = t$time_sec,
      nobs = length(y), ngroups = list(judge = nlevels(d$judge)),
      fixef = fixef_block(beta, Vfull[1:p, 1:p, drop = FALSE]),
      thresholds = list(names = names(fit$alpha), estimate = a$par[(p + 2):k],
                        se = sqrt(diag(a$V))[(p + 2):k],
                        convention = "P(Y <= j | b) = F(theta_j - x'beta - b_judge)"),
      vcov = mat_list(unname(Vfull[1:p, 1:p, drop = FALSE])), vcov_full = named_mat(Vfull),
      vcov_note = "inverse numDeriv (Richardson) Hessian of -loglik over (beta, log SD, thresholds)",
      varcomp = varcorr_sd("judge", exp(a$par[p + 1])),
      re_stata = re_stata("judge", a$par[p + 1], sqrt(a$V[p + 1, p + 1]), "custom fit log SD"),
      loglik = a$loglik, loglik_full = a$loglik, df = k, minus2loglik = -2 * a$loglik,
      AIC = -2 * a$loglik + 2 * k, BIC = -2 * a$loglik + log(length(y)) * k,
      note = sprintf("independent maximisation of the same %s objective as %s (clmm stops at max|grad| ~1e-5; this one is polished)", if (q == 1) "Laplace" else sprintf("%d-point AGHQ", q), id))
    res$lr_vs_no_re <- lr_block(a$loglik, FITS[[id0]]$loglik_full, id0)
    write_result(res)
  }
}

cat("done\n")
