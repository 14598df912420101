## Several grouping factors (issue #11): exports lme4's VerbAgg (crossed, binary),
## grouseticks (three factors, Poisson), Penicillin (crossed, gaussian) and Pastes (nested,
## gaussian) to ../data, then fits them with lme4 (tight control, see common.R) and glmmTMB.
## Run from anywhere:  Rscript tests/reference/r/fit_multilevel.R
## Results go to tests/reference/*.json (the layout of ../r/README_shared_refs.md).
a <- commandArgs(FALSE); source(file.path(dirname(normalizePath(sub("^--file=", "", a[grep("^--file=", a)]))), "common.R"))
DATA <- normalizePath(file.path(REFS, "..", "data"))
RESULTS <- normalizePath(file.path(REFS, ".."))

num_levels <- function(x) as.integer(as.character(x))
w <- function(d, name) write.csv(d, file.path(DATA, paste0(name, ".csv")), row.names = FALSE, quote = TRUE)

## ---- data --------------------------------------------------------------------
data(VerbAgg, package = "lme4")
V <- VerbAgg
w(data.frame(id = num_levels(V$id), item = as.character(V$item),
             item_num = as.integer(V$item),
             Anger = V$Anger, Gender = as.character(V$Gender),
             btype = as.character(V$btype), situ = as.character(V$situ),
             mode = as.character(V$mode),
             resp = as.integer(V$resp) - 1L, r2 = as.integer(V$r2 == "Y"),
             stringsAsFactors = FALSE), "verbagg")
data(grouseticks, package = "lme4")
G <- grouseticks
w(data.frame(INDEX = num_levels(G$INDEX), TICKS = as.integer(G$TICKS),
             BROOD = num_levels(G$BROOD), HEIGHT = G$HEIGHT,
             YEAR = num_levels(G$YEAR), LOCATION = num_levels(G$LOCATION),
             cHEIGHT = G$cHEIGHT, HEIGHT_s = as.numeric(scale(G$HEIGHT))), "grouseticks")
data(Penicillin, package = "lme4")
w(data.frame(diameter = Penicillin$diameter, plate = as.character(Penicillin$plate),
             sample = as.character(Penicillin$sample), stringsAsFactors = FALSE), "penicillin")
data(Pastes, package = "lme4")
w(data.frame(strength = Pastes$strength, batch = as.character(Pastes$batch),
             cask = as.character(Pastes$cask), stringsAsFactors = FALSE), "pastes")

## ---- fits --------------------------------------------------------------------
v <- load_data("verbagg")
fv <- r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)
run_glmer("verbagg_glmer_crossed_laplace", "verbagg", v, fv, binomial, nAGQ = 1, default = FALSE)
run_tmb("verbagg_glmmtmb_crossed_laplace", "verbagg", v, fv, binomial)
fs <- r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 + Gender | item)
run_glmer("verbagg_glmer_crossed_slope_laplace", "verbagg", v, fs, binomial, nAGQ = 1, default = FALSE)

g <- load_data("grouseticks")
fg <- TICKS ~ YEAR + HEIGHT_s + (1 | LOCATION) + (1 | BROOD) + (1 | INDEX)
run_glmer("grouse_glmer_3factor_laplace", "grouseticks", g, fg, poisson, nAGQ = 1, default = FALSE)

p <- read.csv(file.path(DATA, "penicillin.csv"), stringsAsFactors = TRUE)
run_lmer("penicillin_lmer_ml_crossed", "penicillin", p, diameter ~ 1 + (1 | plate) + (1 | sample), REML = FALSE)
s <- read.csv(file.path(DATA, "pastes.csv"), stringsAsFactors = TRUE)
run_lmer("pastes_lmer_ml_nested", "pastes", s, strength ~ 1 + (1 | batch/cask), REML = FALSE)

## REML (lmer's default) with several factors: crossed, nested, and crossed with fixed
## effects and a random slope (VerbAgg's three-level response taken as a number)
run_lmer("penicillin_lmer_reml_crossed", "penicillin", p, diameter ~ 1 + (1 | plate) + (1 | sample), REML = TRUE)
run_lmer("pastes_lmer_reml_nested", "pastes", s, strength ~ 1 + (1 | batch/cask), REML = TRUE)
run_lmer("verbagg_lmer_reml_crossed_slope", "verbagg", v,
         resp ~ Anger + Gender + btype + situ + (1 | id) + (1 + Gender | item), REML = TRUE)

## InstEval (73,421 ratings, 2,972 students x 1,128 lecturers crossed, 28 dept:service
## levels): lmer's own example, REML (its default) and ML
data(InstEval, package = "lme4")
I <- InstEval
w(data.frame(y = I$y, s = as.integer(as.character(I$s)), d = as.integer(as.character(I$d)),
             dept = as.integer(as.character(I$dept)), service = as.integer(I$service) - 1L),
  "insteval")
ie <- read.csv(file.path(DATA, "insteval.csv"))
ie$s <- factor(ie$s); ie$d <- factor(ie$d); ie$dept <- factor(ie$dept)
fi <- y ~ service + (1 | s) + (1 | d) + (1 | dept:service)
run_lmer("insteval_lmer_reml_crossed", "insteval", ie, fi, REML = TRUE)
run_lmer("insteval_lmer_ml_crossed", "insteval", ie, fi, REML = FALSE)
