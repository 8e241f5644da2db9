/*
 * DinoChrome: a canvas runner in the spirit of Chrome's offline dino, written for this project.
 *
 * The world advances in fixed 1/60 s steps (speeds are pixels per step, as in the original),
 * so the game plays the same whatever the frame rate of a loaded machine: a slow frame runs
 * several steps. The autoplay AI decides inside each step by simulating candidate moves
 * with the very functions the game uses, so what it predicts is what happens.
 *
 * Automation API (ChromeService drives it through Selenium):
 *   window.dino.restart() .jump() .duck(ms) .score() .state() -> "running" | "crashed"
 *   window.dino.autoplay(on) (no argument: returns the current value) .stats()
 * Query string: ?autoplay=0 starts with the AI off; ?speed=N sets the starting speed.
 */
(function () {
  "use strict";

  const WIDTH = 600;
  const HEIGHT = 150;
  const GROUND = 131; // canvas y of the ground line
  const STEP_MS = 1000 / 60;
  const MAX_CATCH_UP_MS = 250; // after a stall, fast-forward at most this much

  const params = new URLSearchParams(window.location.search);
  const SETTINGS = {
    startSpeed: clamp(Number(params.get("speed")) || 6, 1, 13),
    maxSpeed: 13,
    acceleration: 0.001,
    gravity: 0.6,
    jumpVelocity: 11,
    birdMinSpeed: 8.5,
    clearSteps: 90, // the first 1.5 s of a run has no obstacle
  };
  const DINO_X = 40;
  const STAND = { w: 44, h: 44 };
  const DUCK = { w: 58, h: 24 };
  const DINO_INSET = { x: 7, y: 3 }; // sprites have transparent corners: forgive them, like the original
  const OBSTACLE_INSET = 3;
  const NEVER = -1;
  const AI_HORIZON = 60;

  const OBSTACLES = {
    cactusSmall: { w: 17, h: 35, minSpeed: 0 },
    cactusLarge: { w: 25, h: 50, minSpeed: 0 },
    // bottoms above the ground: low (jump over), middle (duck under), high (flies over a running dino)
    bird: { w: 46, h: 30, minSpeed: SETTINGS.birdMinSpeed, bottoms: [10, 32, 58] },
  };

  const canvas = document.getElementById("game");
  const ctx = canvas.getContext("2d");
  let autoplay = params.get("autoplay") !== "0";
  let scale = 1;
  const world = newWorld();
  world.hi = Number(readStorage("dino.hi")) || 0;
  world.runs = 1;

  function newWorld() {
    return {
      state: "running",
      speed: SETTINGS.startSpeed,
      distance: 0,
      steps: 0,
      obstacles: [],
      clouds: [
        { x: 90, y: 30 },
        { x: 330, y: 55 },
        { x: 520, y: 20 },
      ],
      dino: { y: 0, vy: 0, jumping: false, ducking: false, keyDuck: false, aiDuck: false, duckUntil: 0 },
      runs: 0,
      jumps: 0,
      ducks: 0,
      passed: 0,
      crashes: 0,
      hi: 0,
    };
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function readStorage(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (error) {
      return null; // storage can be disabled (file://, privacy settings): the high score just resets
    }
  }

  function writeStorage(key, value) {
    try {
      window.localStorage.setItem(key, String(value));
    } catch (error) {
      /* see readStorage */
    }
  }

  // ---- physics shared by the game and the AI's simulations ----------------------------

  function startJump(d) {
    if (d.jumping) return false;
    d.jumping = true;
    d.ducking = false;
    d.vy = SETTINGS.jumpVelocity;
    return true;
  }

  function advanceDino(d) {
    if (!d.jumping) return;
    d.y += d.vy;
    d.vy -= SETTINGS.gravity;
    if (d.y <= 0) {
      d.y = 0;
      d.vy = 0;
      d.jumping = false;
    }
  }

  function dinoBox(d) {
    const size = d.ducking && !d.jumping ? DUCK : STAND;
    return {
      x: DINO_X + DINO_INSET.x,
      bottom: d.y + DINO_INSET.y,
      w: size.w - 2 * DINO_INSET.x,
      h: size.h - 2 * DINO_INSET.y,
    };
  }

  function obstacleBox(o) {
    return { x: o.x + OBSTACLE_INSET, bottom: o.bottom + OBSTACLE_INSET, w: o.w - 2 * OBSTACLE_INSET, h: o.h - 2 * OBSTACLE_INSET };
  }

  function overlaps(a, b) {
    return a.x < b.x + b.w && a.x + a.w > b.x && a.bottom < b.bottom + b.h && a.bottom + a.h > b.bottom;
  }

  function nextSpeed(speed) {
    return Math.min(SETTINGS.maxSpeed, speed + SETTINGS.acceleration);
  }

  // ---- the world ----------------------------------------------------------------------

  function step() {
    if (world.state !== "running") return;
    world.steps += 1;
    const d = world.dino;
    if (autoplay) think();
    const wasDucking = d.ducking;
    d.ducking = !d.jumping && (d.keyDuck || d.aiDuck || world.steps < d.duckUntil);
    if (d.ducking && !wasDucking) world.ducks += 1;
    advanceDino(d);
    world.speed = nextSpeed(world.speed);
    world.distance += world.speed;
    for (const o of world.obstacles) {
      o.x -= world.speed;
      if (!o.passed && o.x + o.w < DINO_X) {
        o.passed = true;
        world.passed += 1;
      }
    }
    world.obstacles = world.obstacles.filter((o) => o.x + o.w > -10);
    spawnObstacles();
    for (const cloud of world.clouds) {
      cloud.x -= world.speed * 0.15;
      if (cloud.x < -50) {
        cloud.x = WIDTH + Math.random() * 120;
        cloud.y = 15 + Math.random() * 50;
      }
    }
    const box = dinoBox(d);
    if (world.obstacles.some((o) => overlaps(box, obstacleBox(o)))) crash();
  }

  function spawnObstacles() {
    if (world.steps < SETTINGS.clearSteps) return;
    const last = world.obstacles[world.obstacles.length - 1];
    if (last && last.x + last.w + last.gap > WIDTH) return;
    const kinds = Object.keys(OBSTACLES).filter((k) => world.speed >= OBSTACLES[k].minSpeed);
    const kind = kinds[Math.floor(Math.random() * kinds.length)];
    const type = OBSTACLES[kind];
    const count = kind === "bird" ? 1 : 1 + Math.floor(Math.random() * 3);
    const bottom = kind === "bird" ? type.bottoms[Math.floor(Math.random() * type.bottoms.length)] : 0;
    // Room to land and take off again at the current speed, then some randomness: every
    // pattern the spawner makes can be cleared, which is what lets the AI survive.
    const airSteps = (2 * SETTINGS.jumpVelocity) / SETTINGS.gravity + 2;
    const gap = world.speed * (airSteps + 14) * (1 + Math.random() * 0.8);
    const x = last ? Math.max(WIDTH, last.x + last.w + last.gap) : WIDTH;
    world.obstacles.push({ kind, x, bottom, w: type.w * count, h: type.h, count, gap, passed: false });
  }

  function crash() {
    world.state = "crashed";
    world.crashes += 1;
    world.dino.aiDuck = false;
    const score = currentScore();
    if (score > world.hi) {
      world.hi = score;
      writeStorage("dino.hi", score);
    }
  }

  function restart() {
    const keep = { runs: world.runs + 1, hi: world.hi, crashes: world.crashes };
    Object.assign(world, newWorld(), keep);
    lastFrame = performance.now();
    accumulated = 0;
  }

  function currentScore() {
    return Math.floor(world.distance * 0.025);
  }

  // ---- autoplay AI --------------------------------------------------------------------

  // Would the dino survive if it jumped after `delay` steps (NEVER: no jump), ducking or not?
  function survives(delay, ducking, obstacles, horizon) {
    const d = { y: world.dino.y, vy: world.dino.vy, jumping: world.dino.jumping, ducking: false };
    const obs = obstacles.map((o) => ({ x: o.x, bottom: o.bottom, w: o.w, h: o.h }));
    let speed = world.speed;
    for (let i = 0; i < horizon; i++) {
      if (i === delay) startJump(d);
      d.ducking = ducking && !d.jumping;
      advanceDino(d);
      speed = nextSpeed(speed);
      for (const o of obs) o.x -= speed;
      const box = dinoBox(d);
      if (obs.some((o) => overlaps(box, obstacleBox(o)))) return false;
      if (!d.jumping && i >= delay && obs[0].x + obs[0].w < DINO_X) return true;
    }
    return true;
  }

  function think() {
    const d = world.dino;
    if (d.jumping) return;
    const ahead = world.obstacles.filter((o) => o.x + o.w >= DINO_X).slice(0, 2);
    if (!ahead.length) {
      d.aiDuck = false;
      return;
    }
    const threat = ahead[0];
    if (survives(NEVER, false, [threat], AI_HORIZON)) {
      d.aiDuck = false;
      return;
    }
    if (survives(NEVER, true, [threat], AI_HORIZON)) {
      // duck late, so a jump is still possible for whatever follows
      if (!survives(NEVER, false, [threat], 12)) d.aiDuck = true;
      return;
    }
    d.aiDuck = false;
    let first = -1;
    let last = -1;
    for (let delay = 0; delay <= 90; delay++) {
      if (survives(delay, false, ahead, AI_HORIZON + delay)) {
        if (first < 0) first = delay;
        last = delay;
      } else if (first >= 0) {
        break;
      }
    }
    if (first < 0) {
      if (!survives(NEVER, false, [threat], 3)) jump(); // nothing clears it any more: try anyway
      return;
    }
    // Jump in the middle of the window of good take-off steps: the most margin both sides.
    if (threat.window === undefined) threat.window = last - first + 1;
    if (first === 0 && last + 1 <= Math.ceil(threat.window / 2)) jump();
  }

  // ---- actions (keyboard, API, AI) ----------------------------------------------------

  function jump() {
    if (world.state !== "running") return false;
    world.dino.keyDuck = false;
    world.dino.duckUntil = 0;
    const started = startJump(world.dino);
    if (started) world.jumps += 1;
    return started;
  }

  function duck(ms) {
    if (world.state !== "running") return false;
    const d = world.dino;
    const duration = Number.isFinite(ms) && ms > 0 ? ms : 400;
    d.duckUntil = world.steps + Math.ceil(duration / STEP_MS);
    if (d.jumping) d.vy = Math.min(d.vy, -6); // ducking in the air drops the dino faster
    return true;
  }

  window.addEventListener("keydown", (event) => {
    if (event.code === "Space" || event.code === "ArrowUp" || event.code === "Enter") {
      event.preventDefault();
      if (world.state === "crashed") restart();
      else jump();
    } else if (event.code === "ArrowDown") {
      event.preventDefault();
      world.dino.keyDuck = true;
      if (world.dino.jumping) duck(0);
    } else if (event.code === "KeyA") {
      autoplay = !autoplay;
    }
  });
  window.addEventListener("keyup", (event) => {
    if (event.code === "ArrowDown") world.dino.keyDuck = false;
  });
  canvas.addEventListener("pointerdown", () => {
    if (world.state === "crashed") restart();
    else jump();
  });

  // ---- drawing ------------------------------------------------------------------------

  const INK = "#535353";
  const SKY = "#f7f7f7";
  // 22 x 22 pixels drawn 2x: the last four rows are the legs, animated.
  const DINO_BODY = [
    "            ######## ",
    "           ## #######",
    "           ##########",
    "           ##########",
    "           ##########",
    "           #####     ",
    "           ########  ",
    "#         #####      ",
    "#        #######     ",
    "##     ##########    ",
    "###   ########## #   ",
    "###############      ",
    "##############       ",
    " ############        ",
    "  ##########         ",
    "   ########          ",
    "    #######          ",
    "    ### ##           ",
  ];
  const LEGS = [
    ["    ##  ##", "    #    ##", "    #", "    ##"],
    ["    ##  ##", "    ##   #", "         #", "         ##"],
    ["    ##  ##", "    #    #", "    #    #", "    ##   ##"],
  ];
  // 29 x 13 pixels drawn 2x
  const DINO_DUCK = [
    "                     ########",
    "#        ########   ## ######",
    "##     ######################",
    "###########################  ",
    " ######################      ",
    "  #################### #     ",
    "   ################          ",
    "    ##############           ",
    "     #####  ####             ",
    "     ##      ##              ",
    "     #        #              ",
    "     ##       ##             ",
  ];

  function drawBitmap(rows, x, bottomY, pixel) {
    const top = bottomY - rows.length * pixel;
    ctx.fillStyle = INK;
    rows.forEach((row, r) => {
      for (let c = 0; c < row.length; c++) {
        if (row[c] === "#") ctx.fillRect(x + c * pixel, top + r * pixel, pixel, pixel);
      }
    });
  }

  function drawDino() {
    const d = world.dino;
    const ground = GROUND - d.y;
    const frame = Math.floor(world.steps / 6) % 2;
    if (d.ducking && !d.jumping) {
      drawBitmap(DINO_DUCK, DINO_X, ground, 2);
      return;
    }
    const legs = world.state === "crashed" || d.jumping ? LEGS[2] : LEGS[frame];
    drawBitmap(DINO_BODY.concat(legs), DINO_X, ground, 2);
    if (world.state === "crashed") {
      // eyes wide open: an X over the eye
      ctx.fillStyle = SKY;
      ctx.fillRect(DINO_X + 24, ground - 44, 6, 6);
      ctx.fillStyle = INK;
      for (const [dx, dy] of [[24, 44], [28, 44], [26, 42], [24, 40], [28, 40]]) {
        ctx.fillRect(DINO_X + dx, ground - dy, 2, 2);
      }
    }
  }

  function drawCactus(x, w, h) {
    const trunk = Math.max(5, Math.round(w * 0.34));
    const tx = x + Math.round((w - trunk) / 2);
    ctx.fillStyle = INK;
    ctx.fillRect(tx, GROUND - h, trunk, h);
    ctx.fillRect(tx + 1, GROUND - h - 2, trunk - 2, 2);
    const arm = Math.max(3, Math.round(trunk * 0.6));
    ctx.fillRect(x, GROUND - h * 0.7, arm, h * 0.35);
    ctx.fillRect(x, GROUND - h * 0.4, tx - x, arm);
    ctx.fillRect(x + w - arm, GROUND - h * 0.8, arm, h * 0.4);
    ctx.fillRect(tx + trunk, GROUND - h * 0.45, x + w - tx - trunk, arm);
  }

  function drawBird(o) {
    const top = GROUND - o.bottom - o.h;
    const wingUp = Math.floor(world.steps / 10) % 2 === 0;
    ctx.fillStyle = INK;
    ctx.fillRect(o.x + 8, top + 12, 30, 8); // body
    ctx.fillRect(o.x, top + 10, 12, 6); // head and beak
    ctx.fillRect(o.x + 34, top + 14, 12, 4); // tail
    if (wingUp) {
      ctx.fillRect(o.x + 16, top, 6, 12);
      ctx.fillRect(o.x + 20, top + 4, 6, 8);
    } else {
      ctx.fillRect(o.x + 16, top + 20, 6, 10);
      ctx.fillRect(o.x + 20, top + 20, 6, 6);
    }
    ctx.fillStyle = SKY;
    ctx.fillRect(o.x + 4, top + 11, 2, 2); // eye
  }

  function drawObstacle(o) {
    if (o.kind === "bird") {
      drawBird(o);
      return;
    }
    const one = o.w / o.count;
    for (let i = 0; i < o.count; i++) drawCactus(o.x + i * one, one, o.h);
  }

  function drawGround() {
    ctx.fillStyle = INK;
    ctx.fillRect(0, GROUND - 1, WIDTH, 1);
    const offset = world.distance % WIDTH;
    for (let i = 0; i < 24; i++) {
      const x = (((i * 53 + 17) % WIDTH) - offset + WIDTH) % WIDTH;
      ctx.fillRect(x, GROUND + 3 + (i % 3) * 4, 2 + (i % 4), 1);
    }
  }

  function drawCloud(cloud) {
    ctx.fillStyle = "#d9d9d9";
    ctx.fillRect(cloud.x, cloud.y + 6, 46, 6);
    ctx.fillRect(cloud.x + 8, cloud.y + 2, 22, 6);
    ctx.fillRect(cloud.x + 14, cloud.y, 12, 4);
  }

  function pad(n) {
    return String(n).padStart(5, "0");
  }

  function drawText() {
    ctx.fillStyle = INK;
    ctx.font = "bold 12px 'Courier New', monospace";
    ctx.textAlign = "right";
    ctx.fillText(`HI ${pad(world.hi)}  ${pad(currentScore())}`, WIDTH - 10, 20);
    ctx.fillStyle = "#8a8a8a";
    ctx.font = "bold 9px 'Courier New', monospace";
    ctx.fillText(`RUN ${world.runs}${autoplay ? "  AUTO" : ""}`, WIDTH - 10, 34);
    if (world.state === "crashed") {
      ctx.fillStyle = INK;
      ctx.textAlign = "center";
      ctx.font = "bold 16px 'Courier New', monospace";
      ctx.fillText("G A M E   O V E R", WIDTH / 2, 60);
      ctx.font = "bold 10px 'Courier New', monospace";
      ctx.fillText("space, tap or a Rose to restart", WIDTH / 2, 80);
    }
  }

  function draw() {
    ctx.setTransform(scale, 0, 0, scale, 0, 0);
    ctx.fillStyle = SKY;
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    world.clouds.forEach(drawCloud);
    drawGround();
    world.obstacles.forEach(drawObstacle);
    drawDino();
    drawText();
  }

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const fit = Math.min(window.innerWidth / WIDTH, window.innerHeight / HEIGHT);
    const css = fit >= 1 ? Math.floor(fit) : fit; // whole multiples keep the pixel art crisp
    canvas.style.width = `${WIDTH * css}px`;
    canvas.style.height = `${HEIGHT * css}px`;
    scale = css * ratio;
    canvas.width = Math.round(WIDTH * scale);
    canvas.height = Math.round(HEIGHT * scale);
    draw();
  }

  // ---- main loop ----------------------------------------------------------------------

  let lastFrame = performance.now();
  let accumulated = 0;

  function frame(now) {
    accumulated += Math.min(MAX_CATCH_UP_MS, Math.max(0, now - lastFrame));
    lastFrame = now;
    while (accumulated >= STEP_MS) {
      step();
      accumulated -= STEP_MS;
    }
    draw();
    window.requestAnimationFrame(frame);
  }

  window.addEventListener("resize", resize);
  resize();
  window.requestAnimationFrame(frame);

  window.dino = Object.freeze({
    ready: true,
    restart() {
      restart();
      return currentScore();
    },
    jump,
    duck,
    score: currentScore,
    state: () => world.state,
    autoplay(on) {
      if (on !== undefined) autoplay = Boolean(on);
      return autoplay;
    },
    stats: () => ({
      state: world.state,
      score: currentScore(),
      hi: world.hi,
      speed: Math.round(world.speed * 100) / 100,
      runs: world.runs,
      jumping: world.dino.jumping,
      ducking: world.dino.ducking,
      jumps: world.jumps,
      ducks: world.ducks,
      passed: world.passed,
      crashes: world.crashes,
      steps: world.steps,
      autoplay,
    }),
  });
})();
