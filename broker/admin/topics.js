// topics.js — the topics view (#/topics): every msg topic and its subscribers
// from /api/dtmsvr/scanKV?cat=topics, a form to subscribe a URL to a topic,
// and buttons to unsubscribe a URL or delete a whole topic (each confirmed).

import {call, get, post} from './api.js';
import {el, formatTime} from './dom.js';

const PAGE = 100;
const MAX_PAGES = 50;

// A topic entry's value is the JSON list [{"url", "remark"}].
function subscribersOf(kv) {
  try {
    const list = JSON.parse(kv.v);
    return Array.isArray(list) ? list.filter((s) => s && typeof s.url === 'string') : [];
  } catch {
    return [];
  }
}

async function loadTopics() {
  const topics = [];
  let position = '';
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await get('/api/dtmsvr/scanKV', {cat: 'topics', limit: PAGE, position});
    for (const kv of answer.kv || []) {
      topics.push({name: kv.k, updated: kv.update_time, subscribers: subscribersOf(kv)});
    }
    position = answer.next_position || '';
    if (!position) break;
  }
  return topics;
}

function subscribeForm(app) {
  const form = el('form', {class: 'filters', id: 'subscribe'},
    el('label', {}, 'Topic', el('input', {name: 'topic', required: true, placeholder: 'orders'})),
    el('label', {class: 'wide'}, 'Subscriber URL',
      el('input', {name: 'url', required: true, placeholder: 'http://stock/api/OnOrder or kafka://topic'})),
    el('label', {}, 'Remark', el('input', {name: 'remark', placeholder: 'optional'})),
    el('div', {class: 'buttons'}, el('button', {type: 'submit', class: 'primary'}, 'Subscribe')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = {};
    for (const name of ['topic', 'url', 'remark']) body[name] = String(data.get(name) || '').trim();
    try {
      await post('/api/dtmsvr/subscribe', body);
      app.notice(`${body.url} subscribed to ${body.topic}.`);
      await app.refresh({keepBanner: true});
    } catch (e) {
      app.error(e.message || String(e));
    }
  });
  return form;
}

function subscriberRow(app, topic, s) {
  const unsubscribe = () => app.confirmAndRun(
    `Unsubscribe ${s.url} from topic ${topic.name}?` +
    (topic.subscribers.length === 1 ? '\n\nIt is the last subscriber: the topic goes too.' : ''),
    () => post('/api/dtmsvr/unsubscribe', {topic: topic.name, url: s.url}),
    `${s.url} unsubscribed from ${topic.name}.`);
  return el('li', {dataset: {url: s.url}},
    el('span', {class: 'url'}, s.url),
    s.remark ? el('span', {class: 'muted'}, ` — ${s.remark}`) : null,
    ' ',
    el('button', {type: 'button', class: 'small unsubscribe', on: {click: unsubscribe}}, 'Unsubscribe'));
}

function topicRow(app, topic) {
  const remove = () => app.confirmAndRun(
    `Delete topic ${topic.name} with its ${topic.subscribers.length} subscriber(s)?\n\n` +
    'msg steps that name it will have no subscriber to call.',
    () => call('DELETE', `/api/dtmsvr/topic/${encodeURIComponent(topic.name)}`),
    `Topic ${topic.name} deleted.`);
  return el('tr', {dataset: {topic: topic.name}},
    el('td', {class: 'gid'}, topic.name),
    el('td', {}, el('ul', {class: 'subscribers'}, topic.subscribers.map((s) => subscriberRow(app, topic, s)))),
    el('td', {class: 'time'}, formatTime(topic.updated)),
    el('td', {}, el('button', {type: 'button', class: 'small danger delete-topic', on: {click: remove}},
      'Delete topic')));
}

function topicsTable(app, topics) {
  const head = el('thead', {}, el('tr', {},
    ['Topic', 'Subscribers', 'Updated', ''].map((h) => el('th', {}, h))));
  const rows = topics.length ? topics.map((t) => topicRow(app, t))
    : [el('tr', {class: 'empty'}, el('td', {colspan: 4}, 'No topics yet.'))];
  return el('table', {class: 'grid', id: 'topics'}, head, el('tbody', {}, rows));
}

export async function topicsView(app) {
  const topics = await loadTopics();
  return el('section', {class: 'topics-view'},
    el('h1', {}, 'Topics'),
    el('p', {class: 'muted'},
      'A msg step whose action is topic://NAME is sent to every subscriber of NAME.'),
    subscribeForm(app),
    topicsTable(app, topics));
}
